"""python scripts/make_scenes.py --out data/scenes --seed 2024

Draw the bundled default scene set into `--out`: `scene_000.png` … (`--size`, 128×128 PNG by
default) and `manifest.json`, a JSON list with one question per entry:
    {"file": "scene_000.png", "question": ..., "answers": [...], "match": "exact", "type": ...}
with every accepted phrasing of the answer in "answers" (confidence_trap.tasks.scenes.phrasings: "two", "2").
The scenes follow confidence_trap/tasks/scenes.py's grammar at `--ambiguity` (1 by default: hues anywhere on
the loop between the named colours, pale and small shapes, skewed answers; 0 is the exact
grammar of the first embedded model), which the embedded model was trained on. The entries
cover the four question types evenly (`--per-type` each); an image may carry several entries.
Everything follows from the seed, so rerunning rewrites identical files.
"""
from __future__ import annotations

import argparse
import json
import os
import random

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from confidence_trap.tasks.scenes import QUESTION_TYPES, draw_scene, phrasings, questions  # noqa: E402


def pick_entries(scene_questions: list[list[tuple]], per_type: int, rng: random.Random) -> list[dict]:
    """`per_type` entries per question type, spreading them over the images and the answers."""
    uses = [0] * len(scene_questions)
    entries = []
    for qtype in QUESTION_TYPES:
        used_images, used_answers = set(), set()
        for _ in range(per_type):
            candidates = []
            for i, qs in enumerate(scene_questions):
                if i in used_images:
                    continue
                for t, q, a in qs:
                    if t == qtype:
                        # fresh answers first, then the least used images, then a random tie-break
                        candidates.append(((a in used_answers, uses[i], rng.random()), i, q, a))
            if not candidates:
                raise ValueError(f"too few scenes with a {qtype!r} question; draw more")
            _, i, q, a = min(candidates)
            used_images.add(i)
            used_answers.add(a)
            uses[i] += 1
            entries.append({"file": f"scene_{i:03d}.png", "question": q, "answers": phrasings(qtype, a),
                            "match": "exact", "type": qtype})
    return sorted(entries, key=lambda e: (e["file"], QUESTION_TYPES.index(e["type"])))


def make_scenes(out: str, seed: int = 2024, n_images: int = 160, per_type: int = 80, size: int = 128,
                ambiguity: float = 1.0):
    """Draw the set into `out` and return its entries (see the module's docstring)."""
    if per_type > n_images:
        raise ValueError(f"--per-type {per_type} needs at least as many images, got --images {n_images}")
    rng = random.Random(seed)
    os.makedirs(out, exist_ok=True)
    scene_questions = []
    for i in range(n_images):
        image, shapes = draw_scene(rng, size=size, ambiguity=ambiguity)
        image.save(os.path.join(out, f"scene_{i:03d}.png"), optimize=True)
        scene_questions.append(questions(shapes))
    entries = pick_entries(scene_questions, per_type, rng)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(entries, f, indent=1)
        f.write("\n")
    return entries


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--out", default=os.path.join(ROOT, "data", "scenes"))
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--images", type=int, default=160)
    p.add_argument("--per-type", type=int, default=80, help="entries per question type")
    p.add_argument("--size", type=int, default=128, help="image side in pixels (the model sees 48)")
    p.add_argument("--ambiguity", type=float, default=1.0, help="confidence_trap.tasks.scenes ambiguity, 0..1")
    args = p.parse_args(argv)
    entries = make_scenes(args.out, args.seed, args.images, args.per_type, args.size, args.ambiguity)
    print(f"wrote {args.images} scenes and {len(entries)} entries to {args.out}")


if __name__ == "__main__":
    main()
