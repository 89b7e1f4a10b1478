#!/usr/bin/env python
"""Rebuild ``data/photos/`` (the default real-photo set for LLaVA runs).

Every image comes from a file that ships inside the scikit-image wheel
(``skimage/data/``).  The licence of each one is checked against the docstring
of the matching loader in ``skimage/data/_fetchers.py`` *of the same wheel*: the
script stops if the expected licence sentence is missing, so a new
scikit-image release that changes a licence cannot slip through silently.

The images are shrunk (never enlarged, never cropped) so the longer side is at
most 512 px, converted to RGB and written as JPEG.  The script writes:

* ``data/photos/<name>.jpg``      the images
* ``data/photos/manifest.json``   two questions a photo: [{"file", "question", "answers",
                                  "match", "category": "one-word"}, {"file", "question":
                                  OPEN_QUESTION, "category": "open-ended"}]
* ``data/photos/ATTRIBUTION.md``  source file, sha256, credit, licence, and
                                  the exact sentence the licence was read from

Where the files come from (first that works):

1. ``--wheel PATH`` to a scikit-image ``.whl`` (a zip), e.g. made with
   ``pip download --no-deps -d /tmp/skd scikit-image``;
2. ``/tmp/skd/scikit_image-*.whl`` when present;
3. an installed ``skimage`` package.

Usage::

    python scripts/fetch_photos.py [--wheel /tmp/skd/scikit_image-0.26.0-...whl]

Left out on purpose (licence not stated, or not confirmable, in the shipped
text, or not a natural photo with an unambiguous answer): matplotlib's
``grace_hopper.jpg`` (its sample_data README and package carry no licence
statement; only a JPEG comment pointing at Wikimedia Commons),
``motorcycle_left.png`` (Middlebury stereo data, no licence in the docstring),
``moon.png`` / ``page.png`` (no licence in the docstring), ``clock_motion.png``
(public domain, but motion-blurred beyond recognition), ``ihc.png`` / ``cell.png``
(microscopy), ``brick``/``grass``/``gravel``/``color`` (textures, test pattern).
"""

from __future__ import annotations

import argparse
import ast
import glob
import hashlib
import io
import json
import os
import re
import sys
import zipfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "data" / "photos"
MAX_SIDE = 512
JPEG_QUALITY = 90

# One entry per image, kept sorted by output file name.
# ``loader``: the function in skimage/data/_fetchers.py whose docstring holds
# the licence; ``licence_quote``: a sentence that must appear (whitespace
# normalized) in that docstring.
PHOTOS = [
    {
        "file": "astronaut.jpg",
        "source": "astronaut.png",
        "loader": "astronaut",
        "title": "Astronaut Eileen Collins, official NASA portrait",
        "credit": "NASA (NASA Great Images database, https://flic.kr/p/r9qvLn)",
        "licence": "Public domain (NASA; no known copyright restrictions)",
        "licence_quote": "No known copyright restrictions, released into the public domain.",
        "question": "What is this person's job? Answer with one word.",
        "answers": ["astronaut", "astronauts", "cosmonaut", "cosmonauts", "spacewoman"],
    },
    {
        "file": "camera.jpg",
        "source": "camera.png",
        "loader": "camera",
        "title": "Man looking through a camera on a tripod (grayscale)",
        "credit": "Lav Varshney (photographer)",
        "licence": "CC0 (public domain dedication)",
        "licence_quote": "No copyright restrictions. CC0 by the photographer (Lav Varshney).",
        "question": "What object is mounted on the tripod? Answer with one word.",
        "answers": ["camera", "cameras", "camcorder", "camcorders", "videocamera"],
    },
    {
        "file": "chelsea.jpg",
        "source": "chelsea.png",
        "loader": "chelsea",
        "title": "Chelsea the cat",
        "credit": "Stefan van der Walt (photographer)",
        "licence": "CC0 (public domain dedication)",
        "licence_quote": "No copyright restrictions. CC0 by the photographer (Stefan van der Walt).",
        "question": "What animal is shown in this image? Answer with one word.",
        "answers": ["cat", "cats", "kitten", "kittens", "kitty", "tabby"],
    },
    {
        "file": "coffee.jpg",
        "source": "coffee.png",
        "loader": "coffee",
        "title": "Cup of espresso on a saucer (courtesy of Pikolo Espresso Bar)",
        "credit": "Rachel Michetti (photographer); courtesy of Pikolo Espresso Bar",
        "licence": "CC0 (public domain dedication)",
        "licence_quote": "No copyright restrictions. CC0 by the photographer (Rachel Michetti).",
        "question": "What drink is in the cup? Answer with one word.",
        "answers": ["coffee", "coffees", "espresso", "espressos", "cappuccino",
                    "latte", "macchiato", "americano", "mocha"],
    },
    {
        "file": "coins.jpg",
        "source": "coins.png",
        "loader": "coins",
        "title": "Greek coins from Pompeii (grayscale)",
        "credit": "Brooklyn Museum Collection "
                  "(https://www.brooklynmuseum.org/opencollection/archives/image/51611)",
        "licence": "No known copyright restrictions (as labelled by the source; "
                   "not an explicit licence grant)",
        "licence_quote": "No known copyright restrictions.",
        "question": "What objects are shown in this image? Answer with one word.",
        "answers": ["coin", "coins", "money", "currency"],
    },
    {
        "file": "hubble_deep_field.jpg",
        "source": "hubble_deep_field.jpg",
        "loader": "hubble_deep_field",
        "title": "Hubble eXtreme Deep Field",
        "credit": "NASA (HubbleSite, release 2012-37)",
        "licence": "Public domain (NASA media guidelines)",
        "licence_quote": "The image was captured by NASA and `may be freely used in the public domain",
        "question": "What does this picture show? Answer with one word.",
        "answers": ["galaxy", "galaxies", "space", "stars", "star", "universe", "cosmos"],
    },
    {
        "file": "retina.jpg",
        "source": "retina.jpg",
        "loader": "retina",
        "title": "Fundus photograph of a normal left eye",
        "credit": "Mikael Häggström (Wikimedia Commons, "
                  "File:Fundus_photograph_of_normal_left_eye.jpg)",
        "licence": "CC0 1.0 (public domain dedication)",
        "licence_quote": "This file is made available under the Creative Commons CC0 1.0 "
                         "Universal Public Domain Dedication.",
        "question": "Which part of the body is shown in this photograph? Answer with one word.",
        "answers": ["eye", "eyes", "retina", "retinas", "eyeball", "eyeballs", "fundus"],
    },
    {
        "file": "rocket.jpg",
        "source": "rocket.jpg",
        "loader": "rocket",
        "title": "Falcon 9 carrying DSCOVR on Launch Complex 40, Cape Canaveral",
        "credit": "SpaceX (SpaceX Photos on Flickr, photo 16511594820)",
        "licence": "Public domain (released by SpaceX)",
        "licence_quote": "The image was captured by SpaceX and `released in the public domain",
        "question": "What vehicle is shown in the middle of this image? Answer with one word.",
        "answers": ["rocket", "rockets", "spacecraft", "spaceship", "spaceships",
                    "falcon", "missile"],
    },
]


# --------------------------------------------------------------------------- source


class WheelSource:
    def __init__(self, path: str):
        self.path = path
        self.zf = zipfile.ZipFile(path)
        self.label = f"scikit-image wheel {os.path.basename(path)}"

    def read(self, rel: str) -> bytes:
        return self.zf.read(f"skimage/data/{rel}")


class InstalledSource:
    def __init__(self):
        import skimage  # noqa: PLC0415

        self.dir = Path(skimage.__file__).parent / "data"
        self.label = f"installed scikit-image {skimage.__version__} ({self.dir})"

    def read(self, rel: str) -> bytes:
        return (self.dir / rel).read_bytes()


def open_source(wheel: str | None):
    if wheel:
        return WheelSource(wheel)
    found = sorted(glob.glob("/tmp/skd/scikit_image-*.whl"))
    if found:
        return WheelSource(found[-1])
    try:
        return InstalledSource()
    except ImportError:
        sys.exit("no scikit-image found: pass --wheel, e.g. after "
                 "`pip download --no-deps -d /tmp/skd scikit-image`")


def loader_docstrings(src) -> dict[str, str]:
    tree = ast.parse(src.read("_fetchers.py").decode("utf-8"))
    return {n.name: ast.get_docstring(n) or "" for n in tree.body
            if isinstance(n, ast.FunctionDef)}


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


# --------------------------------------------------------------------------- build


def shrink(img: Image.Image) -> Image.Image:
    img = img.convert("RGB")
    w, h = img.size
    scale = MAX_SIDE / max(w, h)
    if scale < 1:
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                         Image.Resampling.LANCZOS)
    return img


# Asked of every photo beside its one-word question: an answer of many tokens, with no reference,
# so a run measures entropy outside the one-word regime, where most answers sit at the floor.
OPEN_QUESTION = "Describe this image in one sentence."


def manifest_entries(p: dict) -> list[dict]:
    """The manifest's two entries of one photo: its one-word question and the open-ended one."""
    return [{"file": p["file"], "question": p["question"], "answers": p["answers"], "match": "contains",
             "category": "one-word"},
            {"file": p["file"], "question": OPEN_QUESTION, "category": "open-ended"}]


def build(src, out_dir: Path) -> None:
    docs = loader_docstrings(src)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest, attrib = [], []
    for p in sorted(PHOTOS, key=lambda d: d["file"]):
        doc = docs.get(p["loader"])
        if doc is None:
            sys.exit(f"{p['file']}: loader skimage.data.{p['loader']} not found")
        if _norm(p["licence_quote"]) not in _norm(doc):
            sys.exit(f"{p['file']}: expected licence sentence not found in the "
                     f"docstring of skimage.data.{p['loader']}; re-check the licence")
        raw = src.read(p["source"])
        with Image.open(io.BytesIO(raw)) as im:
            orig_size = im.size
            img = shrink(im)
        img.save(out_dir / p["file"], "JPEG", quality=JPEG_QUALITY, optimize=True)
        manifest.extend(manifest_entries(p))
        attrib.append((p, orig_size, img.size, hashlib.sha256(raw).hexdigest()))

    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (out_dir / "ATTRIBUTION.md").write_text(render_attribution(src, attrib))
    print(f"wrote {len(attrib)} images ({len(manifest)} questions) to {out_dir}")


def render_attribution(src, attrib) -> str:
    lines = [
        "# Attribution for data/photos",
        "",
        "Generated by `scripts/fetch_photos.py`; do not edit by hand.",
        "",
        f"Source package: {src.label}. Each image is a file from `skimage/data/`,",
        "shrunk to at most 512 px on its longer side (aspect ratio kept, no crop),",
        "converted to RGB and re-encoded as JPEG. The licence of each image was read",
        "from the docstring of the named loader function in `skimage/data/_fetchers.py`",
        "of that same package (`skimage/data/README.txt` states no licences); the",
        "quoted sentence is checked verbatim by the script on every rebuild.",
        "",
        "| file | source file | credit | licence |",
        "|---|---|---|---|",
    ]
    for p, _, _, _ in attrib:
        lines.append(f"| {p['file']} | skimage/data/{p['source']} | {p['credit']} "
                     f"| {p['licence']} |")
    lines.append("")
    for p, osz, nsz, sha in attrib:
        lines += [
            f"## {p['file']}",
            "",
            f"- Title: {p['title']}",
            f"- Source file: `skimage/data/{p['source']}` "
            f"({osz[0]}x{osz[1]}, sha256 `{sha}`)",
            f"- Stored as: {nsz[0]}x{nsz[1]} JPEG",
            f"- Credit: {p['credit']}",
            f"- Licence: {p['licence']}",
            f"- Licence read from: docstring of `skimage.data.{p['loader']}` "
            f"(`skimage/data/_fetchers.py`): \"{_norm(p['licence_quote'])}\"",
            "",
        ]
    lines += [
        "## Not included",
        "",
        "- `matplotlib/mpl-data/sample_data/grace_hopper.jpg`: the matplotlib package",
        "  ships no licence statement for it (its sample_data README.txt has none; the",
        "  JPEG comment only says `File source: http://commons.wikimedia.org/wiki/File:Grace_Hopper.jpg`),",
        "  so the licence could not be confirmed from package text.",
        "- `skimage/data/motorcycle_left.png` (Middlebury 2014 stereo), `moon.png`,",
        "  `page.png`: no licence stated in their docstrings.",
        "- `skimage/data/clock_motion.png`: public domain, but blurred beyond recognition.",
        "- microscopy (`ihc.png`, `cell.png`), textures and test patterns: not natural",
        "  photos with a short unambiguous answer.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    ap.add_argument("--wheel", help="path to a scikit-image .whl")
    ap.add_argument("--out", default=str(OUT_DIR), help="output folder")
    args = ap.parse_args(argv)
    build(open_source(args.wheel), Path(args.out))


if __name__ == "__main__":
    main()
