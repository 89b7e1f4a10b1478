"""The scene grammar of models/scenes.py, read back off the pixels of many drawn scenes."""
import math
import random

import numpy as np
import pytest

from models.scenes import COLORS, QUESTION_TYPES, SHAPES, draw_scene, questions

SIZES = (32, 33, 48, 64, 100, 224)
WHITE = np.array([255, 255, 255])
# Fraction of its square box a filled shape covers (edges blur by at most a pixel or so).
FILL = {"square": 1.0, "circle": math.pi / 4, "triangle": 0.5}


def scenes(n=240, seed=7):
    rng = random.Random(seed)
    for i in range(n):
        size = SIZES[i % len(SIZES)]
        image, shapes = draw_scene(rng, size=size)
        yield size, np.asarray(image).astype(int), shapes


def coverage(pixels: np.ndarray, color) -> np.ndarray:
    """How much of each pixel the shape covers, assuming it is a blend of white and `color`."""
    c = np.array(COLORS[color])
    channel = int(np.argmax(np.abs(WHITE - c)))
    return (255 - pixels[..., channel]) / (255 - c[channel])


def test_constants():
    assert QUESTION_TYPES == ("count", "color", "shape", "describe")
    assert SHAPES == ("circle", "square", "triangle")
    assert COLORS == {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
                      "yellow": (230, 200, 40)}


def test_layout_and_pixels():
    seen_counts, seen_shapes, seen_colors = set(), set(), set()
    for size, px, shapes in scenes():
        assert px.shape == (size, size, 3)
        assert 1 <= len(shapes) <= 3
        seen_counts.add(len(shapes))
        covered = np.zeros((size, size), bool)
        for s in shapes:
            seen_shapes.add(s["shape"])
            seen_colors.add(s["color"])
            left, top, right, bottom = s["box"]
            side = right - left
            assert side == bottom - top
            assert 0.2 * size <= side <= 0.3 * size
            assert 0 <= left and right <= size and 0 <= top and bottom <= size
            # the colour is exact at the centre of the box, which every shape covers
            cy, cx = top + side // 2, left + side // 2
            assert tuple(px[cy, cx]) == COLORS[s["color"]], (size, s)
            # the box holds only blends of white and this shape's colour, filled as its kind is
            box = px[top:bottom, left:right]
            cov = coverage(box, s["color"])
            blend = WHITE + np.outer(cov.ravel(), np.array(COLORS[s["color"]]) - WHITE)
            assert np.abs(blend - box.reshape(-1, 3)).max() <= 2
            fill = cov.mean()
            assert abs(fill - FILL[s["shape"]]) < 0.07 + 2.5 / side, (size, s, fill)
            if s["shape"] == "triangle":  # apex up: top corners empty, bottom middle full
                assert tuple(px[top, left]) == tuple(px[top, right - 1]) == (255, 255, 255)
                assert tuple(px[bottom - 1, cx]) == COLORS[s["color"]]
            covered[top:bottom, left:right] = True
        assert (px[~covered] == 255).all(), "outside the boxes the background is white"
        for a, b in zip(shapes, shapes[1:]):
            assert a["box"][2] <= b["box"][0], "horizontal extents overlap or are out of order"
    assert seen_counts == {1, 2, 3}
    assert seen_shapes == set(SHAPES) and seen_colors == set(COLORS)


def test_questions_follow_uniqueness_rules():
    seen_types = set()
    for _, _, shapes in scenes():
        kinds = [s["shape"] for s in shapes]
        colors = [s["color"] for s in shapes]
        qs = questions(shapes)
        asked_kinds = {q.split()[-1].rstrip("?") for t, q, _ in qs if t == "color"}
        asked_colors = {q.split()[-1].rstrip("?") for t, q, _ in qs if t == "shape"}
        assert asked_kinds == {k for k in kinds if kinds.count(k) == 1}
        assert asked_colors == {c for c in colors if colors.count(c) == 1}
        for qtype, question, answer in qs:
            seen_types.add(qtype)
            assert qtype in QUESTION_TYPES
            assert answer == answer.lower() and not answer.endswith(".")
            if qtype == "count":
                assert question == "How many shapes are there?"
                assert answer == ("one", "two", "three")[len(shapes) - 1]
            elif qtype == "color":
                kind = question[len("What color is the "):-1]
                assert question == f"What color is the {kind}?"
                assert answer == colors[kinds.index(kind)]
            elif qtype == "shape":
                color = question[len("Which shape is "):-1]
                assert question == f"Which shape is {color}?"
                assert answer == kinds[colors.index(color)]
            else:
                assert question == "Describe the image."
        assert [t for t, _, _ in qs].count("count") == 1
        assert [t for t, _, _ in qs].count("describe") == 1
    assert seen_types == set(QUESTION_TYPES)


def test_describe_orders_left_to_right_from_pixels():
    for _, px, shapes in scenes(n=120, seed=11):
        answer = dict((t, a) for t, _, a in questions(shapes))["describe"]
        parts = answer.replace(" and ", ", ").split(", ")
        assert len(parts) == len(shapes)
        # find the shapes by scanning the image's columns for non-white runs, left to right
        ink = (px != 255).any(axis=2).any(axis=0)
        starts = [x for x in range(len(ink)) if ink[x] and (x == 0 or not ink[x - 1])]
        assert len(starts) == len(shapes)
        for part, x0, s in zip(parts, starts, shapes):
            a, color, kind = part.split()
            assert a == "a" and kind == s["shape"]
            col = px[:, x0:x0 + 3].reshape(-1, 3)
            ink_col = col[(col != 255).any(axis=1)]
            assert color == min(COLORS, key=lambda c: np.abs(ink_col - COLORS[c]).sum()), part


def test_describe_wording():
    a = {"shape": "circle", "color": "red"}
    b = {"shape": "square", "color": "blue"}
    c = {"shape": "triangle", "color": "green"}
    describe = lambda shapes: dict((t, x) for t, _, x in questions(shapes))["describe"]
    assert describe([a]) == "a red circle"
    assert describe([a, b]) == "a red circle and a blue square"
    assert describe([a, b, c]) == "a red circle, a blue square and a green triangle"


def test_deterministic_and_size_checked():
    one = draw_scene(random.Random(3), size=96)
    two = draw_scene(random.Random(3), size=96)
    assert one[1] == two[1] and one[0].tobytes() == two[0].tobytes()
    assert draw_scene(random.Random(4), size=96)[1] != one[1]
    with pytest.raises(ValueError):
        draw_scene(random.Random(0), size=31)


def test_bundled_scene_set_is_reproducible(tmp_path):
    """data/scenes is what scripts/make_scenes.py draws with its defaults; types are even."""
    import json
    import os
    import subprocess
    import sys

    from PIL import Image

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, os.path.join(repo, "scripts", "make_scenes.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, cwd=str(tmp_path))
    bundled = os.path.join(repo, "data", "scenes")
    entries = json.load(open(os.path.join(bundled, "manifest.json")))
    assert entries == json.load(open(tmp_path / "manifest.json"))
    assert 12 <= len(entries) <= 16
    types = [e["type"] for e in entries]
    assert all(types.count(t) == len(entries) // 4 for t in QUESTION_TYPES)
    for e in entries:
        assert set(e) == {"file", "question", "answers", "match", "type"} and e["match"] == "exact"
    for name in sorted({e["file"] for e in entries}):
        ours = np.asarray(Image.open(os.path.join(bundled, name)).convert("RGB"))
        assert ours.shape == (224, 224, 3)
        assert (ours == np.asarray(Image.open(tmp_path / name).convert("RGB"))).all(), name
