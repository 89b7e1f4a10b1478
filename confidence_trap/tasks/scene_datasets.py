"""python experiments/scene_datasets.py {pope,vqa} OUT [--rows N] [--layout L] [--seed S] [--size PX]

Builds a small local benchmark dataset from drawn scenes into the folder OUT, in a layout that
`--dataset OUT` reads, so the benchmark path runs offline on the embedded model:

    python experiments/scene_datasets.py pope runs/pope_scenes --rows 30
    python experiments/entropy_analysis.py --model tiny --task configs/tasks/pope.yaml \
        --dataset runs/pope_scenes --out runs/pope_tiny

From Python:

    from confidence_trap.tasks.scene_datasets import build_pope, build_vqa
    folder = build_pope(tmp_path / "pope", 12)                  # save_to_disk DatasetDict
    folder = build_vqa(tmp_path / "vqa", 9, layout="parquet")   # data/validation-0000k-of-…

Nothing is downloaded. POPE layout (as lmms-lab/POPE): id (unique string), question_id
(restarting at 1 in each category, as POPE's does), question "Is there a {shape} in the
image?", answer "yes"/"no" (true of the drawn scene), image_source, image, category. VQA layout
(as lmms-lab/VQAv2): question_id (unique int), question, answers (ten {"answer",
"answer_confidence", "answer_id"} dicts), multiple_choice_answer, answer_type ("yes/no",
"number", "other"), question_type, image_id, image. The first `agree(i)` of a VQA row's ten
answers are the true answer, in varied spellings ("two", "2", "Two."), the rest a wrong one.

Layouts: "disk_dict" (DatasetDict.save_to_disk, with an extra one-row split "extra"), "disk"
(Dataset.save_to_disk), "parquet" (data/{split}-0000k-of-0000n.parquet, the hub layout),
"parquet_flat" ({split}.parquet).
"""
from __future__ import annotations

import argparse
import io
import os
import random
import sys

try:
    from confidence_trap.tasks.scenes import COLORS, NUMBERS, SHAPES, draw_scene
except ModuleNotFoundError as e:  # a plain checkout: the packages are not importable yet
    sys.exit(f"error: {e.name} is not importable: run `pip install -e .` in the repository first")

POPE_CATEGORIES = ("adversarial", "popular", "random")
LAYOUTS = ("disk_dict", "disk", "parquet", "parquet_flat")
_SPELLINGS = {"one": ("one", "1", "One."), "two": ("two", "2", "Two."),
              "three": ("three", "3", "3.")}


def _png(image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def pope_columns(n: int, seed: int = 0, size: int = 64, categories=POPE_CATEGORIES,
                 image_format: str = "PNG") -> dict:
    """Columns of n POPE-style rows; row i's category is categories[i % len(categories)]."""
    rng = random.Random(seed)
    cols = {k: [] for k in ("id", "question_id", "question", "answer", "image_source", "image",
                            "category")}
    per_category: dict = {}
    for i in range(n):
        image, shapes = draw_scene(rng, size=size)
        present = {s["shape"] for s in shapes}
        absent = [k for k in SHAPES if k not in present]
        yes = not absent or rng.random() < 0.5
        kind = rng.choice(sorted(present)) if yes else rng.choice(absent)
        cat = categories[i % len(categories)]
        per_category[cat] = per_category.get(cat, 0) + 1
        cols["id"].append(str(i))
        cols["question_id"].append(per_category[cat])
        cols["question"].append(f"Is there a {kind} in the image?")
        cols["answer"].append("yes" if yes else "no")
        cols["image_source"].append(f"scene_{seed}_{i}")
        cols["image"].append({"bytes": _png(image, image_format), "path": None})
        cols["category"].append(cat)
    return cols


def agree(i: int) -> int:
    """How many of VQA row i's ten humans give the true answer: 1, 2, 3, 4, 10, 1, …"""
    return (1, 2, 3, 4, 10)[i % 5]


def vqa_columns(n: int, seed: int = 0, size: int = 64, image_format: str = "PNG") -> dict:
    """Columns of n VQA-style rows about drawn scenes (yes/no, number and colour questions)."""
    rng = random.Random(seed)
    cols = {k: [] for k in ("question_id", "question", "answers", "multiple_choice_answer",
                            "answer_type", "question_type", "image_id", "image")}
    for i in range(n):
        image, shapes = draw_scene(rng, size=size)
        kind = ("yes/no", "number", "other")[i % 3]
        if kind == "number":
            truth = NUMBERS[len(shapes) - 1]
            wrong = NUMBERS[len(shapes) % 3]
            question, qtype = "How many shapes are there?", "how many"
            spellings = _SPELLINGS[truth]
        elif kind == "other":
            s = shapes[0]
            truth = s["color"]
            wrong = next(c for c in sorted(COLORS) if c != truth)
            question, qtype = f"What color is the leftmost {s['shape']}?", "what color is the"
            spellings = (truth, truth.capitalize(), f"{truth}.")
        else:
            color = rng.choice(sorted(COLORS))
            truth = "yes" if any(s["color"] == color for s in shapes) else "no"
            wrong = "no" if truth == "yes" else "yes"
            question, qtype = f"Is there a {color} shape?", "is there a"
            spellings = (truth, truth.capitalize(), f"{truth}.")
        k = agree(i)
        humans = [spellings[j % len(spellings)] for j in range(k)] + [wrong] * (10 - k)
        cols["question_id"].append(1000 * seed + i + 1)
        cols["question"].append(question)
        cols["answers"].append([{"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                                for j, a in enumerate(humans)])
        cols["multiple_choice_answer"].append(truth if k >= 5 else wrong)
        cols["answer_type"].append(kind)
        cols["question_type"].append(qtype)
        cols["image_id"].append(i)
        cols["image"].append({"bytes": _png(image, image_format), "path": None})
    return cols


def _features(kind: str):
    from datasets import Features, Image, Value

    if kind == "pope":
        return Features({"id": Value("string"), "question_id": Value("int64"),
                         "question": Value("string"), "answer": Value("string"),
                         "image_source": Value("string"), "image": Image(),
                         "category": Value("string")})
    answer = {"answer": Value("string"), "answer_confidence": Value("string"),
              "answer_id": Value("int64")}
    return Features({"question_id": Value("int64"), "question": Value("string"),
                     "answers": [answer], "multiple_choice_answer": Value("string"),
                     "answer_type": Value("string"), "question_type": Value("string"),
                     "image_id": Value("int64"), "image": Image()})


def to_dataset(columns: dict, kind: str):
    """Columns from pope_columns / vqa_columns -> a datasets.Dataset with hub-like features."""
    from datasets import Dataset

    return Dataset.from_dict(columns, features=_features(kind))


def write(ds, folder, split: str, layout: str, shards: int = 2, extra=None) -> str:
    """Write one split of `ds` to `folder` in `layout` (see the module note) -> folder."""
    from datasets import DatasetDict

    folder = str(folder)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    os.makedirs(folder, exist_ok=True)
    if layout == "disk":
        ds.save_to_disk(folder)
    elif layout == "disk_dict":
        splits = {split: ds}
        if extra is not False:
            splits["extra"] = extra if extra is not None else ds.select([0])
        DatasetDict(splits).save_to_disk(folder)
    elif layout == "parquet":
        os.makedirs(os.path.join(folder, "data"), exist_ok=True)
        shards = max(1, min(shards, len(ds))) if len(ds) else 1
        for k in range(shards):
            ds.shard(shards, k, contiguous=True).to_parquet(
                os.path.join(folder, "data", f"{split}-{k:05d}-of-{shards:05d}.parquet"))
    else:
        ds.to_parquet(os.path.join(folder, f"{split}.parquet"))
    return folder


def build_pope(folder, n: int, layout: str = "disk_dict", split: str = "test", seed: int = 0,
               size: int = 64, categories=POPE_CATEGORIES, image_format: str = "PNG") -> str:
    """A local POPE-layout dataset of n rows -> its folder (pass as --dataset)."""
    ds = to_dataset(pope_columns(n, seed, size, categories, image_format), "pope")
    return write(ds, folder, split, layout)


def build_vqa(folder, n: int, layout: str = "disk_dict", split: str = "validation",
              seed: int = 0, size: int = 64, image_format: str = "PNG") -> str:
    """A local VQA-layout dataset of n rows -> its folder (pass as --dataset)."""
    ds = to_dataset(vqa_columns(n, seed, size, image_format), "vqa")
    return write(ds, folder, split, layout)


def main(argv=None) -> int:
    """The command line (see the module docstring); prints the folder it wrote."""
    ap = argparse.ArgumentParser(prog="scene_datasets.py", description="Build a local POPE- or VQA-layout "
                                 "dataset of drawn scenes (nothing is downloaded), for --dataset.", allow_abbrev=False)
    ap.add_argument("kind", choices=("pope", "vqa"), help="POPE's yes/no layout or VQAv2's ten-answer layout")
    ap.add_argument("out", help="folder to write (created)")
    ap.add_argument("--rows", type=int, default=30, help="rows (default 30)")
    ap.add_argument("--layout", choices=LAYOUTS, default="disk_dict", help="how it is saved (default disk_dict)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the drawn scenes (default 0)")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")

    def refuse(message):  # argparse would print its usage block: bad input gets one line
        ap.exit(2, f"error: {message} (see --help)\n")
    ap.error = refuse
    args = ap.parse_args(argv)
    if args.rows < 1 or args.size < 16:
        ap.error("--rows must be at least 1 and --size at least 16")
    build = build_pope if args.kind == "pope" else build_vqa
    folder = build(args.out, args.rows, layout=args.layout, seed=args.seed, size=args.size)
    print(f"wrote {args.rows} {args.kind.upper()}-layout rows to {folder} (pass --dataset {folder})")
    return 0


__all__ = ["LAYOUTS", "POPE_CATEGORIES", "agree", "build_pope", "build_vqa", "main", "pope_columns",
           "to_dataset", "vqa_columns", "write"]

if __name__ == "__main__":
    sys.exit(main())
