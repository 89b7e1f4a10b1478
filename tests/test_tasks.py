"""confidence_trap/tasks/ (task.py, storage.py, datasets.py) on small local datasets built from drawn scenes (nothing downloads):
task YAML, every dataset layout, the one-line errors, seeded stratified subsets, lazy images."""
import io
import os
from collections import Counter

import pytest

from confidence_trap.tasks.scoring import score
from confidence_trap import models
from confidence_trap.tasks import datasets as T
from confidence_trap.tasks import storage
from confidence_trap.tasks import task as task_spec
from confidence_trap.tasks.datasets import load_task, open_dataset, select_rows
from confidence_trap.errors import InputError
from confidence_trap.tasks.scene_datasets import (LAYOUTS, agree, build_pope, build_vqa, pope_columns,
                                    to_dataset, vqa_columns, write)

SUFFIX = "\nAnswer the question using a single word or phrase."


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """No network, and a private hub cache, so nothing outside tmp_path can make a test pass."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))


@pytest.fixture(scope="module")
def pope_task():
    return load_task("pope")


@pytest.fixture(scope="module")
def vqa_task():
    return load_task("vqav2")


@pytest.fixture(scope="module")
def pope_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("pope")
    return {layout: build_pope(base / layout, 12, layout=layout) for layout in LAYOUTS}


def files_under(path):
    return sorted(os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs)


def one_line(excinfo):
    msg = str(excinfo.value)
    assert "\n" not in msg and msg.strip() == msg and msg
    return msg


# ------------------------------------------------------------------------------ task YAML

def test_shipped_tasks(pope_task, vqa_task):
    assert set(T.available_tasks()) >= {"pope", "vqav2"}
    assert load_task(os.path.join(task_spec.TASKS_DIR, "pope.yaml")) == pope_task
    assert (pope_task.name, pope_task.dataset, pope_task.split, pope_task.metric) == (
        "pope", "lmms-lab/POPE", "test", "pope")
    assert pope_task.columns.named() == {"id": "id", "image": "image", "question": "question",
                                         "answer": "answer", "category": "category"}
    assert pope_task.prompt_suffix == SUFFIX and pope_task.prompt_format == "vicuna_v1"
    assert pope_task.query("  Is there a dog in the image? ") == (
        "Is there a dog in the image?\nAnswer the question using a single word or phrase.")
    assert (vqa_task.dataset, vqa_task.split, vqa_task.metric) == ("lmms-lab/VQAv2", "validation",
                                                                   "vqa")
    assert vqa_task.columns.named() == {"id": "question_id", "image": "image",
                                        "question": "question", "answers": "answers",
                                        "category": "answer_type"}


GOOD = """task: t
split: test
columns: {id: id, image: image, question: question, answer: answer}
metric: exact
"""


@pytest.mark.parametrize("text, needle", [
    (GOOD + "temperature: 0\n", "unknown key(s) temperature"),
    (GOOD.replace("metric: exact\n", ""), "missing required key(s) metric"),
    (GOOD.replace("split: test\n", ""), "missing required key(s) split"),
    (GOOD.replace("exact", "bleu"), "unknown metric 'bleu'"),
    (GOOD.replace("answer: answer", "answer: answer, label: l"), "unknown column role(s) label"),
    (GOOD.replace("answer: answer", "answer: a, answers: b"), "exactly one of columns.answer"),
    (GOOD.replace(", answer: answer", ""), "exactly one of columns.answer"),
    (GOOD.replace("id: id, ", ""), "columns.id is required"),
    (GOOD.replace("exact", "pope").replace("answer: answer", "answers: answers"),
     "metric pope needs columns.answer"),
    (GOOD.replace("exact", "vqa"), "metric vqa needs columns.answers"),
    (GOOD + "prompt_format: alpaca\n", "unknown prompt_format 'alpaca'"),
    (GOOD + "prompt_suffix: [1]\n", "prompt_suffix must be a string"),
    ("- a\n- b\n", "must be a YAML mapping"),
    ("task: [unclosed\n", "cannot read task"),
])
def test_load_task_errors_are_one_line(tmp_path, text, needle):
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        load_task(str(path))
    assert needle in one_line(e)


def test_load_task_minimal_and_missing_file(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(GOOD)
    task = load_task(str(path))
    assert task.prompt_suffix == "" and task.dataset is None and task.prompt_format is None
    with pytest.raises(InputError) as e:
        load_task(str(tmp_path / "nope.yaml"))
    assert "task file not found" in one_line(e) and "pope" in str(e.value)


# ------------------------------------------------------------------------- layouts, rows

@pytest.mark.parametrize("layout", LAYOUTS)
def test_pope_every_layout_reads_the_same_rows(pope_dirs, pope_task, layout):
    cols = pope_columns(12)
    data = open_dataset(pope_dirs[layout], None, pope_task)
    assert (len(data), data.split, data.revision) == (12, "test", None)
    assert data.ids == cols["id"] and data.categories == cols["category"]
    rows = data.rows(range(12))
    assert [r.question for r in rows] == cols["question"]
    assert [r.references for r in rows] == [(a,) for a in cols["answer"]]
    assert [r.query for r in rows] == [q + SUFFIX for q in cols["question"]]
    assert rows[5] == data.row(5) and rows[5].index == 5
    assert data.key(5) == rows[5].key == f"{data.dataset}:test:5"
    assert len({r.key for r in rows}) == 12
    assert data.info()["rows"] == 12 and data.info()["task"] == "pope"


def test_dataset_label_is_repo_relative_inside_the_repo(pope_task, tmp_path):
    data = open_dataset(build_pope(tmp_path / "p", 3), None, pope_task)
    assert data.dataset == str(tmp_path / "p")
    # a folder inside the repository is named relative to it, as imagesets names images
    from confidence_trap.tasks.imagesets import image_key
    inside = os.path.join(task_spec.REPO, "data", "x")
    assert storage.label(inside) == image_key(inside) == "data/x"


@pytest.mark.parametrize("layout", ("disk_dict", "parquet"))
def test_vqa_layout_references_and_scores(tmp_path, vqa_task, layout):
    folder = build_vqa(tmp_path / layout, 10, layout=layout)
    data = open_dataset(folder, None, vqa_task)
    cols = vqa_columns(10)
    assert data.ids == [str(q) for q in cols["question_id"]]
    assert data.categories == cols["answer_type"]
    for row in data.rows(range(10)):
        humans = cols["answers"][row.index]
        assert row.references == tuple(h["answer"] for h in humans) and len(row.references) == 10
        # the first human's spelling is the truth; agree(i) humans give it (in mixed spellings)
        expected = {1: 0.3, 2: 0.6, 3: 0.9, 4: 1.0, 10: 1.0}[agree(row.index)]
        assert score(vqa_task.metric, row.references[0], row.references) == pytest.approx(expected)


def test_pope_references_score_with_the_task_metric(pope_dirs, pope_task):
    data = open_dataset(pope_dirs["parquet"], None, pope_task)
    for row in data.rows(range(len(data))):
        label = row.references[0]
        assert score("pope", f"{label.capitalize()}, I think.", row.references) == 1.0
        other = "no" if label == "yes" else "yes"
        assert score("pope", other, row.references) == 0.0


def test_datasetdict_other_split_and_split_names_from_files(tmp_path, pope_task, pope_dirs):
    data = open_dataset(pope_dirs["disk_dict"], "extra", pope_task)
    assert len(data) == 1 and data.key(0).endswith(":extra:0")
    ds = to_dataset(pope_columns(4), "pope")
    flat = tmp_path / "flat"
    write(ds, flat, "validation", "parquet_flat")
    write(ds.select([0, 1]), flat, "test", "parquet_flat")
    assert len(open_dataset(str(flat), "validation", pope_task)) == 4
    assert len(open_dataset(str(flat), None, pope_task)) == 2           # the task's "test"
    unnamed = tmp_path / "unnamed"
    unnamed.mkdir()
    ds.to_parquet(str(unnamed / "pope.parquet"))
    assert len(open_dataset(str(unnamed), "train", pope_task)) == 4
    with pytest.raises(InputError) as e:
        open_dataset(str(unnamed), None, pope_task)
    assert "no split 'test'" in one_line(e) and "train" in str(e.value)


def test_parquet_without_hf_metadata(tmp_path, pope_task):
    """Plain pyarrow parquet: the image a struct of bytes/path, or raw bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = pope_columns(3)
    for name, images in (("struct", cols["image"]), ("bytes", [c["bytes"] for c in cols["image"]])):
        folder = tmp_path / name / "data"
        folder.mkdir(parents=True)
        table = pa.table({**{k: v for k, v in cols.items() if k != "image"}, "image": images})
        pq.write_table(table, str(folder / "test-00000-of-00001.parquet"))
        data = open_dataset(str(folder.parent), None, pope_task)
        assert data.image(2).tobytes() == open_dataset(build_pope(tmp_path / "ref", 3), None,
                                                       pope_task).image(2).tobytes()


def test_image_paths_resolve_against_the_dataset_folder(tmp_path, pope_task):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    cols = pope_columns(2)
    (tmp_path / "ds" / "img").mkdir(parents=True)
    paths = []
    for i, value in enumerate(cols["image"]):
        Image.open(io.BytesIO(value["bytes"])).save(tmp_path / "ds" / "img" / f"{i}.png")
        paths.append(f"img/{i}.png")
    table = pa.table({**{k: v for k, v in cols.items() if k != "image"}, "image": paths})
    pq.write_table(table, str(tmp_path / "ds" / "test.parquet"))
    image = open_dataset(str(tmp_path / "ds"), None, pope_task).image(1)
    assert image.mode == "RGB" and image.size == (64, 64)


# ------------------------------------------------------------------------------- errors

def test_unknown_column_names_it_and_the_columns_that_exist(pope_dirs, pope_task, tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text(open(pope_task.path).read().replace("category: category",
                                                        "category: difficulty"))
    task = load_task(str(path))
    for layout in ("disk_dict", "parquet"):
        with pytest.raises(InputError) as e:
            open_dataset(pope_dirs[layout], None, task)
        msg = one_line(e)
        assert "no column 'difficulty'" in msg and "columns.category" in msg
        assert "id, question_id, question, answer, image_source, image, category" in msg


def test_unknown_split(pope_dirs, pope_task):
    for layout, listed in (("disk_dict", "extra, test"), ("parquet", "test")):
        with pytest.raises(InputError) as e:
            open_dataset(pope_dirs[layout], "validation", pope_task)
        assert "no split 'validation'" in one_line(e) and listed in str(e.value)


def test_lone_dataset_with_a_recorded_split(tmp_path, pope_task):
    import datasets

    ds = to_dataset(pope_columns(3), "pope")
    ds = datasets.Dataset(ds.data, info=ds.info, split=datasets.NamedSplit("validation"))
    ds.save_to_disk(str(tmp_path / "d"))
    with pytest.raises(InputError) as e:
        open_dataset(str(tmp_path / "d"), "test", pope_task)
    assert "holds split 'validation', not 'test'" in one_line(e)
    assert len(open_dataset(str(tmp_path / "d"), "validation", pope_task)) == 3


def test_empty_split(tmp_path, pope_task):
    ds = to_dataset(pope_columns(3), "pope")
    write(ds, tmp_path / "dd", "test", "disk_dict", extra=ds.select([]))
    with pytest.raises(InputError) as e:
        open_dataset(str(tmp_path / "dd"), "extra", pope_task)
    assert "split 'extra' of" in one_line(e) and "is empty (0 rows)" in str(e.value)
    write(ds.select([]), tmp_path / "pq", "test", "parquet_flat")
    with pytest.raises(InputError) as e:
        open_dataset(str(tmp_path / "pq"), None, pope_task)
    assert "is empty (0 rows)" in one_line(e)


def test_limit_larger_than_the_split(pope_dirs, pope_task):
    data = open_dataset(pope_dirs["disk"], None, pope_task)
    with pytest.raises(InputError) as e:
        select_rows(data, 13, 0)
    assert "--limit 13 is larger than split 'test'" in one_line(e) and "(12 rows)" in str(e.value)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InputError):
            select_rows(data, bad, 0)


def test_duplicate_ids_labels_and_types(tmp_path, pope_task, vqa_task):
    # POPE's question_id restarts in each category: not a row id
    path = tmp_path / "qid.yaml"
    path.write_text(open(pope_task.path).read().replace("id: id", "id: question_id"))
    folder = build_pope(tmp_path / "p", 6)
    with pytest.raises(InputError) as e:
        open_dataset(folder, None, load_task(str(path)))
    assert "column 'question_id' (columns.id) is not unique" in one_line(e)
    assert "rows 0 and 1 share '1'" in str(e.value)

    cols = pope_columns(3)
    cols["answer"][1] = "maybe"
    write(to_dataset(cols, "pope"), tmp_path / "lab", "test", "parquet")
    with pytest.raises(InputError) as e:
        open_dataset(str(tmp_path / "lab"), None, pope_task)
    assert "must hold yes/no" in one_line(e) and "row 1" in str(e.value)

    path = tmp_path / "mc.yaml"   # multiple_choice_answer is one string, not the ten answers
    path.write_text(open(vqa_task.path).read().replace("answers: answers",
                                                       "answers: multiple_choice_answer"))
    with pytest.raises(InputError) as e:
        open_dataset(build_vqa(tmp_path / "v", 3), None, load_task(str(path)))
    assert "must hold a list per row" in one_line(e)

    path = tmp_path / "img.yaml"
    path.write_text(open(pope_task.path).read().replace("image: image", "image: question_id"))
    with pytest.raises(InputError) as e:
        open_dataset(folder, None, load_task(str(path)))
    assert "not images" in one_line(e)


def test_not_a_dataset(tmp_path, pope_task):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(InputError) as e:
        open_dataset(str(tmp_path / "empty"), None, pope_task)
    assert "is not a dataset folder" in one_line(e)
    with pytest.raises(InputError) as e:
        open_dataset(str(tmp_path / "empty" / "notes.txt"), None, pope_task)
    assert "is a file" in one_line(e)
    with pytest.raises(InputError) as e:
        open_dataset(str(tmp_path / "missing" / "deeper"), None, pope_task)
    assert "not a hub id" in one_line(e)
    task = T.Task("t", "test", pope_task.columns, "pope")
    with pytest.raises(InputError) as e:
        open_dataset(None, None, task)
    assert "no dataset" in one_line(e)


@pytest.mark.parametrize("name", ["lmms-lab/POPE", "confidence-trap-tests/no-such-dataset"])
def test_hub_id_offline_is_one_line_and_writes_nothing(tmp_path, pope_task, name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = files_under(tmp_path)
    with pytest.raises(InputError) as e:
        open_dataset(name, None, pope_task)
    msg = one_line(e)
    assert f"{name!r} is no local folder" in msg and "not in the local Hugging Face cache" in msg
    assert f"hf download --repo-type dataset {name}" in msg and "--dataset DIR" in msg
    assert files_under(tmp_path) == before


def test_hub_id_offline_probe_when_no_env(tmp_path, pope_task, monkeypatch):
    """Env unset but the hub unreachable: the one TCP probe decides, and the cache is tried."""
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE")
    calls = []
    monkeypatch.setattr(models, "hub_reachable", lambda *a, **k: calls.append(1) or False)
    with pytest.raises(InputError) as e:
        open_dataset("lmms-lab/POPE", None, pope_task)
    assert calls == [1] and "cannot be downloaded here" in one_line(e)


def test_hub_id_from_a_cached_snapshot(tmp_path, pope_task, monkeypatch):
    snap = tmp_path / "snapshots" / ("ab" * 20)
    build_pope(snap, 6, layout="parquet")
    monkeypatch.setattr(storage, "_cached_snapshot", lambda name: str(snap))
    data = open_dataset("lmms-lab/POPE", None, pope_task)
    assert (data.dataset, data.revision, len(data)) == ("lmms-lab/POPE", "ab" * 20, 6)
    assert data.key(0) == "lmms-lab/POPE:test:0"
    with pytest.raises(InputError) as e:
        open_dataset("lmms-lab/POPE", "validation", pope_task)
    assert "split 'validation' of lmms-lab/POPE is not in the local Hugging Face cache" in (
        one_line(e)) and "(cached: test)" in str(e.value)


def test_hub_id_online_fetches_only_the_split(tmp_path, vqa_task, monkeypatch):
    """The online path with the hub replaced: list files, fetch one split's, read them."""
    repo = tmp_path / "repo"
    ds = to_dataset(vqa_columns(4), "vqa")
    write(ds, repo, "validation", "parquet")
    write(ds.select([0]), repo, "testdev", "parquet")
    listing = {"validation": ["data/validation-00000-of-00002.parquet",
                              "data/validation-00001-of-00002.parquet"],
               "testdev": ["data/testdev-00000-of-00001.parquet"]}
    fetched = []

    def snapshot(name, allow_patterns=None, local_files_only=False):
        fetched.append((name, allow_patterns, local_files_only))
        return str(repo)

    monkeypatch.setattr(storage, "_hub_online", lambda: True)
    monkeypatch.setattr(storage, "_remote_split_files", lambda name: listing)
    monkeypatch.setattr(storage, "_snapshot", snapshot)
    data = open_dataset("lmms-lab/VQAv2", None, vqa_task)
    assert fetched == [("lmms-lab/VQAv2", listing["validation"], False)]
    assert len(data) == 4 and data.dataset == "lmms-lab/VQAv2"
    with pytest.raises(InputError) as e:
        open_dataset("lmms-lab/VQAv2", "test", vqa_task)
    assert "has no split 'test'; its splits: testdev, validation" in one_line(e)


# ------------------------------------------------------------------------- select_rows

@pytest.fixture(scope="module")
def uneven(tmp_path_factory, pope_task):
    """60 rows: 30 'a', 18 'b', 12 'c' (50/30/20%)."""
    cats = ["a"] * 5 + ["b"] * 3 + ["c"] * 2
    folder = build_pope(tmp_path_factory.mktemp("uneven"), 60, layout="parquet", categories=cats)
    return open_dataset(folder, None, pope_task)


@pytest.mark.parametrize("limit", [1, 2, 7, 10, 13, 29, 59])
def test_select_rows_stratified_within_one(uneven, limit):
    picked = select_rows(uneven, limit, seed=3)
    assert len(picked) == limit == len(set(picked)) and picked == sorted(picked)
    counts = Counter(uneven.categories[i] for i in picked)
    sizes = Counter(uneven.categories)
    for cat, size in sizes.items():
        assert abs(counts[cat] - limit * size / len(uneven)) < 1


def test_select_rows_seeded(uneven):
    a = select_rows(uneven, 10, seed=0)
    assert a == select_rows(uneven, 10, seed=0)
    assert a != select_rows(uneven, 10, seed=1)
    assert Counter(uneven.categories[i] for i in a) == {"a": 5, "b": 3, "c": 2}
    assert select_rows(uneven, None, 0) == list(range(60)) == select_rows(uneven, 60, 5)


def test_select_rows_without_categories(tmp_path, pope_task):
    path = tmp_path / "nocat.yaml"
    path.write_text(open(pope_task.path).read().replace("  category: category\n", ""))
    data = open_dataset(build_pope(tmp_path / "p", 20), None, load_task(str(path)))
    assert data.categories is None and data.row(0).category is None
    a = select_rows(data, 5, 0)
    assert len(a) == 5 and a == sorted(a) == select_rows(data, 5, 0)
    assert a != select_rows(data, 5, 9)


def test_quotas_largest_remainder():
    assert T._quotas({"a": 30, "b": 18, "c": 12}, 7, 60) == {"a": 4, "b": 2, "c": 1}  # 3.5 2.1 1.4
    assert T._quotas({"x": 1, "y": 1, "z": 1}, 2, 3) == {"x": 1, "y": 1, "z": 0}      # ties: name


# ---------------------------------------------------------------------------- lazy images

@pytest.mark.parametrize("layout", ("disk_dict", "parquet"))
def test_images_decode_to_rgb_like_datasets_does(pope_dirs, pope_task, layout):
    import datasets
    from PIL import Image

    data = open_dataset(pope_dirs[layout], None, pope_task)
    reference = datasets.load_from_disk(pope_dirs["disk"])
    for i in (0, 7, 11, 3):                                    # any order
        image = data.image(i)
        assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (64, 64)
        assert image.tobytes() == reference[i]["image"].convert("RGB").tobytes()


def test_images_are_decoded_only_when_asked(pope_dirs, pope_task, monkeypatch):
    calls = []
    real = T.decode_image
    monkeypatch.setattr(T, "decode_image",
                        lambda v, base_dir=None: calls.append(1) or real(v, base_dir))
    data = open_dataset(pope_dirs["parquet"], None, pope_task)
    data.rows(range(12))
    data.row(4)
    assert calls == []
    batches = list(data.batches([1, 4, 9, 10, 11], 2))
    assert [len(rows) for rows, _ in batches] == [2, 2, 1] and len(calls) == 5
    assert [r.index for rows, _ in batches for r in rows] == [1, 4, 9, 10, 11]


def test_non_rgb_images_become_rgb(tmp_path, pope_task):
    from PIL import Image

    cols = pope_columns(3)
    for i, mode in enumerate(("L", "RGBA", "P")):
        buf = io.BytesIO()
        Image.open(io.BytesIO(cols["image"][i]["bytes"])).convert(mode).save(buf, format="PNG")
        cols["image"][i] = {"bytes": buf.getvalue(), "path": None}
    data = open_dataset(write(to_dataset(cols, "pope"), tmp_path / "m", "test", "disk"), None,
                        pope_task)
    assert [data.image(i).mode for i in range(3)] == ["RGB"] * 3


def test_dataset_images_match_load_image_of_the_same_file(tmp_path, pope_task):
    """Transparent, 16-bit and EXIF-rotated files: the same pixels as confidence_trap.models.images.load_image."""
    import numpy as np
    from PIL import Image

    from confidence_trap.models.images import load_image

    files = []
    im = Image.new("RGBA", (20, 10), (255, 0, 0, 255))
    im.putpixel((3, 3), (0, 0, 0, 0))                        # transparent -> white, not black
    im.save(tmp_path / "a.png")
    Image.fromarray((np.arange(200, dtype=np.uint16).reshape(10, 20) * 300)).save(
        tmp_path / "b.png")                                   # 16-bit grayscale
    exif = Image.Exif()
    exif[0x0112] = 6                                          # rotate 90° on display
    Image.new("RGB", (30, 10), (0, 0, 255)).save(tmp_path / "c.jpg", exif=exif)
    cols = pope_columns(3)
    for i, name in enumerate(("a.png", "b.png", "c.jpg")):
        cols["image"][i] = {"bytes": (tmp_path / name).read_bytes(), "path": None}
        files.append(str(tmp_path / name))
    data = open_dataset(write(to_dataset(cols, "pope"), tmp_path / "d", "test", "disk"), None,
                        pope_task)
    for i, f in enumerate(files):
        assert data.image(i).tobytes() == load_image(f).tobytes(), f
    assert data.image(0).getpixel((3, 3)) == (255, 255, 255)
    assert data.image(2).size == (10, 30)


def test_corrupt_image_names_its_row(tmp_path, pope_task):
    cols = pope_columns(2)
    cols["image"][1] = {"bytes": b"not an image", "path": None}
    data = open_dataset(write(to_dataset(cols, "pope"), tmp_path / "c", "test", "parquet"), None,
                        pope_task)
    data.image(0)
    with pytest.raises(InputError) as e:
        data.image(1)
    assert "row 1" in one_line(e) and data.key(1) in str(e.value)


def test_parquet_row_groups_in_any_order(tmp_path, pope_task):
    """Many small row groups across two files: every image right, forwards and backwards."""
    import pyarrow.parquet as pq

    ds = to_dataset(pope_columns(14), "pope")
    (tmp_path / "rg" / "data").mkdir(parents=True)
    for k, part in enumerate((ds.select(range(9)), ds.select(range(9, 14)))):
        pq.write_table(part.data.table, str(tmp_path / "rg" / "data" /
                                            f"test-{k:05d}-of-00002.parquet"), row_group_size=4)
    data = open_dataset(str(tmp_path / "rg"), None, pope_task)
    reference = open_dataset(write(ds, tmp_path / "ref", "test", "disk"), None, pope_task)
    order = list(range(14)) + list(range(13, -1, -1)) + [5, 5, 0, 13, 8, 9]
    for i in order:
        assert data.image(i).tobytes() == reference.image(i).tobytes(), i


def test_parquet_images_stream_without_reading_the_row_group(tmp_path, pope_task):
    """One ~15 MB row group of incompressible images: Arrow holds a few images' worth (a read
    buffer, a page, one 8-row batch), never the row group."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rng = np.random.default_rng(0)
    cols = pope_columns(100, size=32)
    for i in range(100):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (336, 336, 3), dtype=np.uint8)).save(
            buf, format="JPEG", quality=95)
        cols["image"][i] = {"bytes": buf.getvalue(), "path": None}
    size = sum(len(c["bytes"]) for c in cols["image"])
    folder = write(to_dataset(cols, "pope"), tmp_path / "big", "test", "parquet_flat")
    assert pq.ParquetFile(os.path.join(folder, "test.parquet")).metadata.num_row_groups == 1
    data = open_dataset(folder, None, pope_task)
    base, peak = pa.total_allocated_bytes(), 0
    for i in range(100):
        data.image(i)
        peak = max(peak, pa.total_allocated_bytes() - base)
    assert size > 12 * 2**20 and peak < 6 * 2**20, (size, peak)


def test_scene_datasets_is_a_command_with_usage(tmp_path, capsys, pope_task):
    """python experiments/scene_datasets.py --help prints its usage; a build writes a folder that
    --dataset reads; a missing argument is one usage error, exit 2."""
    import subprocess
    import sys

    from confidence_trap.tasks.scene_datasets import main
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "experiments", "scene_datasets.py")
    r = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("usage: scene_datasets.py") and "{pope,vqa}" in r.stdout
    assert main(["pope", str(tmp_path / "p"), "--rows", "6"]) == 0
    assert "--dataset" in capsys.readouterr().out
    assert len(open_dataset(str(tmp_path / "p"), None, pope_task)) == 6
    with pytest.raises(SystemExit) as e:
        main([])
    assert e.value.code == 2 and capsys.readouterr().err.count("\n") == 1  # one line, no usage block
