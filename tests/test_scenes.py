"""The scene grammar of confidence_trap/tasks/scenes.py, read back off the pixels of many drawn scenes."""
import hashlib
import json
import math
import random

import numpy as np
import pytest

from confidence_trap.tasks.scenes import (ANSWER_PRIOR, COLORS, HUE_LOOP, PALEST, QUESTION_TYPES, SHAPES, draw_scene,
                           hue_rgb, nearest_color, questions, shade)

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


def test_exact_grammar_draws_what_it_always_drew():
    """draw_scene(rng, size) makes the same draws as the first grammar's code did: the digest of
    200 scenes' shape lists, and the next random number after them, as that code gave them."""
    rng = random.Random(2718)
    shapes = [draw_scene(rng, size=(32, 64, 100, 224)[i % 4])[1] for i in range(200)]
    digest = hashlib.sha256(json.dumps(shapes).encode()).hexdigest()
    assert digest == "797b2fa44ddb35c3ae8a14055a16ef39d053158498a750d1fa04382349edca15"
    assert rng.random() == 0.7791212451804977
    one, two = draw_scene(random.Random(5), 96), draw_scene(random.Random(5), 96, ambiguity=0.0)
    assert one[1] == two[1] and one[0].tobytes() == two[0].tobytes()
    assert set(one[1][0]) == {"shape", "color", "box"}


def test_hue_loop_and_shades():
    assert HUE_LOOP == ("red", "yellow", "green", "blue")
    for name in COLORS:
        assert shade(name) == COLORS[name]
        assert nearest_color(COLORS[name])[0] == name
    # halfway along a segment: the mean of the two neighbours, e.g. orange between red and yellow
    assert hue_rgb("red", 0.5) == pytest.approx(hue_rgb("yellow", -0.5))
    assert hue_rgb("blue", 0.5) == pytest.approx([(a + b) / 2 for a, b in zip(COLORS["blue"], COLORS["red"])])
    assert shade("green", 0.0, 0.5) == tuple(int(round(255 - 0.5 * (255 - v))) for v in COLORS["green"])
    for bad in (lambda: shade("red", 0.0, 0.0), lambda: hue_rgb("red", 1.0),
                lambda: draw_scene(random.Random(0), 64, ambiguity=1.5)):
        with pytest.raises(ValueError):
            bad()


def ambiguous_scenes(n=150, seed=23, ambiguity=1.0):
    rng = random.Random(seed)
    for i in range(n):
        size = (64, 96, 128, 224)[i % 4]
        image, shapes = draw_scene(rng, size=size, ambiguity=ambiguity)
        yield size, np.asarray(image).astype(int), shapes


def test_ambiguous_grammar_read_back_off_the_pixels():
    """Hue offset, contrast and size are what the shape lists say, recovered from the pixels:
    the name is the nearest named colour along the hue loop, the boxes are 5-30% of the side."""
    offsets, contrasts, sides = [], [], []
    for size, px, shapes in ambiguous_scenes():
        covered = np.zeros((size, size), bool)
        for s in shapes:
            left, top, right, bottom = s["box"]
            side = right - left
            assert side == bottom - top and 0.05 * size <= side <= 0.3 * size, (size, s)
            sides.append(side / size)
            rgb = s["rgb"]
            assert rgb == shade(s["color"], s["offset"], s["contrast"])
            assert abs(s["offset"]) < 0.5 and PALEST <= s["contrast"] <= 1.0
            # the box holds only blends of white and the shape's own colour
            box = px[top:bottom, left:right].reshape(-1, 3)
            d = WHITE - np.array(rgb)
            cov = ((WHITE - box) @ d) / max(d @ d, 1)
            assert np.abs(WHITE - np.outer(cov, d) - box).max() <= 2, s
            if side >= 8:  # an interior pixel, away from the box-averaged edges
                cx = left + side // 2  # the centre; lower for a triangle (apex up), where it is wide
                cy = top + (3 * side) // 4 if s["shape"] == "triangle" else top + side // 2
                assert tuple(px[cy, cx]) == rgb, (size, s)
                name, offset, contrast = nearest_color(px[cy, cx])
                # uint8 rounding blurs pale colours: the place on the loop is read to within a
                # few hundredths, so right at a boundary the pixel may name the neighbour
                tol = 0.02 / s["contrast"] + 0.005
                read = (HUE_LOOP.index(name) + offset) % 4
                drawn = (HUE_LOOP.index(s["color"]) + s["offset"]) % 4
                assert min(abs(read - drawn), 4 - abs(read - drawn)) <= tol, (s, name, offset)
                if abs(s["offset"]) < 0.5 - tol:
                    assert name == s["color"], (s, name, offset)
                assert abs(contrast - s["contrast"]) <= 0.02, (s, contrast)
                offsets.append(s["offset"])
                contrasts.append(s["contrast"])
            covered[top:bottom, left:right] = True
        assert (px[~covered] == 255).all()
        for a, b in zip(shapes, shapes[1:]):
            assert a["box"][2] <= b["box"][0]
    # the ranges are used: near-boundary hues, pale shapes and small shapes all occur
    assert max(np.abs(offsets)) > 0.45 and min(contrasts) < PALEST + 0.1 and min(sides) < 0.08


def test_ambiguous_grammar_skews_the_answers():
    """Answer frequencies follow ANSWER_PRIOR (a model that cannot see has a prior to fall back on)."""
    counts = {k: {} for k in ("count", "shape", "color")}
    for _, _, shapes in ambiguous_scenes(n=1500, seed=5):
        counts["count"][len(shapes)] = counts["count"].get(len(shapes), 0) + 1
        for s in shapes:
            counts["shape"][s["shape"]] = counts["shape"].get(s["shape"], 0) + 1
            counts["color"][s["color"]] = counts["color"].get(s["color"], 0) + 1
    for key, prior in ANSWER_PRIOR.items():
        total = sum(counts[key].values())
        for answer, p in prior.items():
            # binomial standard error <= 0.013 at these totals; 4 of them
            assert abs(counts[key][answer] / total - p) < 0.05, (key, answer, counts[key])


def test_ambiguity_scales_the_ranges():
    """At ambiguity 0.4 hues stay within 0.2 of the named colour, contrast >= 1 - 0.4 (1 - PALEST),
    sides >= 14%."""
    for size, _, shapes in ambiguous_scenes(n=200, seed=3, ambiguity=0.4):
        for s in shapes:
            side = s["box"][2] - s["box"][0]
            assert abs(s["offset"]) < 0.2 and s["contrast"] >= 1 - (1 - PALEST) * 0.4 - 1e-9
            assert side >= math.ceil(0.14 * size)


def test_bundled_scene_set_is_reproducible(tmp_path):
    """data/scenes is what scripts/make_scenes.py draws with its defaults: at least 200 image-
    question pairs, types even, scenes of the ambiguous grammar (so some hard ones)."""
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
    assert len(entries) >= 200
    assert len({(e["file"], e["question"]) for e in entries}) == len(entries)
    types = [e["type"] for e in entries]
    assert all(types.count(t) == len(entries) // 4 for t in QUESTION_TYPES)
    for e in entries:
        assert set(e) == {"file", "question", "answers", "match", "type"} and e["match"] == "exact"
    for name in sorted({e["file"] for e in entries}):
        ours = np.asarray(Image.open(os.path.join(bundled, name)).convert("RGB"))
        assert ours.shape == (128, 128, 3)
        assert (ours == np.asarray(Image.open(tmp_path / name).convert("RGB"))).all(), name
    # the set's scenes are the ambiguous grammar's: off-prototype colours occur in it
    off = 0
    for name in sorted({e["file"] for e in entries}):
        px = np.asarray(Image.open(os.path.join(bundled, name)).convert("RGB")).reshape(-1, 3)
        ink = {tuple(p) for p in px[(px != 255).any(axis=1)]}
        off += not (ink & {tuple(c) for c in COLORS.values()})
    assert off >= len({e["file"] for e in entries}) // 2, off
