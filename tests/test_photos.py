"""Checks on the bundled photo set in data/photos (built by scripts/fetch_photos.py)."""

import json
from pathlib import Path

import pytest
from PIL import Image

PHOTOS = Path(__file__).resolve().parent.parent / "data" / "photos"
MANIFEST = PHOTOS / "manifest.json"
ATTRIBUTION = PHOTOS / "ATTRIBUTION.md"
MAX_SIDE = 512
MAX_TOTAL_BYTES = 1_500_000


def _manifest():
    return json.loads(MANIFEST.read_text())


def _attribution_rows():
    """file name -> table row text, from the summary table in ATTRIBUTION.md."""
    rows = {}
    for line in ATTRIBUTION.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 4 and cells[0] not in ("file", "---"):
            rows[cells[0]] = cells
    return rows


def test_manifest_shape_and_order():
    entries = _manifest()
    files = [e["file"] for e in entries]
    assert files == sorted(files), "manifest must be in sorted file order"
    photos = sorted(set(files))
    assert len(photos) >= 8
    for f in photos:  # every photo: one one-word question with references, one open-ended without
        kinds = sorted(e["category"] for e in entries if e["file"] == f)
        assert kinds == ["one-word", "open-ended"], f
    for e in entries:
        assert isinstance(e["question"], str) and e["question"].strip()
        if e["category"] == "open-ended":
            assert "answers" not in e and "one word" not in e["question"].lower()
            continue
        assert "one word" in e["question"].lower()
        assert isinstance(e["answers"], list) and e["answers"]
        assert all(isinstance(a, str) and a.strip() for a in e["answers"])
        # "contains" matching is on lower-cased, punctuation-free words
        assert all(a == a.lower() and a.replace(" ", "").isalnum() for a in e["answers"])
        assert e["match"] == "contains"


def test_photo_items_carry_their_question_kind():
    """Records of the photo set carry a category, so summary.json splits them by question kind."""
    from confidence_trap.tasks.imagesets import resolve_items

    items = resolve_items([], None, "photos")
    kinds = {dict(it.extra).get("category") for it in items}
    assert kinds == {"one-word", "open-ended"}
    assert all((it.answers is None) == (dict(it.extra)["category"] == "open-ended") for it in items)
    assert len({it.key for it in items}) * 2 == len(items)


@pytest.mark.parametrize("entry", _manifest(), ids=lambda e: e["file"])
def test_image_opens_and_is_small(entry):
    path = PHOTOS / entry["file"]
    assert path.is_file()
    assert path.suffix.lower() in (".jpg", ".jpeg", ".png")
    with Image.open(path) as im:
        im.load()
        assert max(im.size) <= MAX_SIDE
        assert im.mode in ("RGB", "L")


@pytest.mark.parametrize("entry", _manifest(), ids=lambda e: e["file"])
def test_licence_listed(entry):
    rows = _attribution_rows()
    assert entry["file"] in rows, f"{entry['file']} missing from ATTRIBUTION.md"
    _, source, credit, licence = rows[entry["file"]]
    assert source and credit and licence


def test_folder_size():
    total = sum(p.stat().st_size for p in PHOTOS.rglob("*") if p.is_file())
    assert total <= MAX_TOTAL_BYTES


def test_no_stray_images():
    listed = {e["file"] for e in _manifest()}
    on_disk = {p.name for p in PHOTOS.iterdir()
               if p.suffix.lower() in (".jpg", ".jpeg", ".png")}
    assert on_disk == listed
