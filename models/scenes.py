"""Procedurally drawn scenes with known answers: what the embedded tiny LLaVA is trained on.

    import random
    from models.scenes import draw_scene, questions
    image, shapes = draw_scene(random.Random(0), size=224)
    for qtype, question, answer in questions(shapes): print(qtype, question, answer)

The grammar (a contract: tests read it back off the pixels):
- a square image with a white background, any size from 32×32 up;
- 1 to 3 filled shapes (circle, square, isosceles triangle with its apex up and base at the
  bottom), each in one of four exact RGB colours;
- each shape's bounding box is a square whose side is 20–30% of the image side and lies wholly
  inside the image; no two boxes overlap horizontally, so left-to-right order is clear;
- shapes and colours may repeat; a colour question is asked only of a shape kind that appears
  exactly once, and a shape question only of a colour that appears exactly once.
"""
from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (230, 200, 40),
}
SHAPES = ("circle", "square", "triangle")
QUESTION_TYPES = ("count", "color", "shape", "describe")
NUMBERS = ("one", "two", "three")
BACKGROUND = (255, 255, 255)
MIN_SIZE = 32
SUPERSAMPLE = 4  # edges are box-averaged from a 4× drawing; uniform interiors keep exact colours


def _sides(rng: random.Random, size: int, n: int) -> list[int]:
    lo, hi = math.ceil(0.2 * size), math.floor(0.3 * size)
    return [rng.randint(lo, hi) for _ in range(n)]


def _lefts(rng: random.Random, size: int, sides: list[int]) -> list[int]:
    """Left edges of boxes placed left to right with random gaps (at least one pixel between)."""
    n = len(sides)
    slack = size - sum(sides) - (n - 1)  # >= 0.1 * size, since three sides are at most 90%
    cuts = sorted(rng.randint(0, slack) for _ in range(n))
    gaps = [cuts[0]] + [cuts[i] - cuts[i - 1] for i in range(1, n)]
    lefts, x = [], 0
    for i, side in enumerate(sides):
        x += gaps[i] + (1 if i else 0)
        lefts.append(x)
        x += side
    return lefts


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, box: tuple, color: tuple, k: int) -> None:
    left, top, right, bottom = (v * k for v in box)
    if kind == "circle":
        draw.ellipse((left, top, right - 1, bottom - 1), fill=color)
    elif kind == "square":
        draw.rectangle((left, top, right - 1, bottom - 1), fill=color)
    elif kind == "triangle":
        draw.polygon([((left + right - 1) / 2, top), (right - 1, bottom - 1), (left, bottom - 1)],
                     fill=color)
    else:
        raise ValueError(f"unknown shape {kind!r}; valid: {SHAPES}")


def draw_scene(rng: random.Random, size: int = 224):
    """Draw one scene at `size`×`size`; deterministic given the state of `rng`.

    Returns (PIL RGB image, shapes), shapes sorted left to right, each a dict
    {"shape": kind, "color": name, "box": (left, top, right, bottom)} in pixels, right and
    bottom exclusive (a PIL box), side = right - left = bottom - top.

    >>> image, shapes = draw_scene(random.Random(0), size=64)
    >>> image.size, 1 <= len(shapes) <= 3
    ((64, 64), True)
    """
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE}, got {size}")
    n = rng.randint(1, 3)
    sides = _sides(rng, size, n)
    lefts = _lefts(rng, size, sides)
    shapes = []
    for left, side in zip(lefts, sides):
        top = rng.randint(0, size - side)
        shapes.append({
            "shape": rng.choice(SHAPES),
            "color": rng.choice(sorted(COLORS)),
            "box": (left, top, left + side, top + side),
        })
    k = SUPERSAMPLE
    canvas = Image.new("RGB", (size * k, size * k), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for s in shapes:
        _draw_shape(draw, s["shape"], s["box"], COLORS[s["color"]], k)
    return canvas.reduce(k), shapes


def shape_mask(shapes, size: int, out_size: int) -> Image.Image:
    """Which shape covers each pixel of a `size` scene redrawn at `out_size`: an "L" image,
    0 for background and i + 1 for shapes[i] (hard edges; for dense training targets)."""
    mask = Image.new("L", (out_size, out_size), 0)
    draw = ImageDraw.Draw(mask)
    scale = out_size / size
    for i, s in enumerate(shapes):
        _draw_shape(draw, s["shape"], tuple(round(v * scale) for v in s["box"]), i + 1, 1)
    return mask


def describe(shapes) -> str:
    """'a red circle', 'a red circle and a blue square', 'a red circle, a blue square and a ...'."""
    parts = [f"a {s['color']} {s['shape']}" for s in shapes]
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def questions(shapes) -> list[tuple[str, str, str]]:
    """Every question the grammar allows about `shapes`: [(question_type, question, answer)].

    Order: count, colour questions (SHAPES order), shape questions (colour-name order), describe.
    """
    kinds = [s["shape"] for s in shapes]
    colors = [s["color"] for s in shapes]
    out = [("count", "How many shapes are there?", NUMBERS[len(shapes) - 1])]
    for kind in SHAPES:
        if kinds.count(kind) == 1:
            out.append(("color", f"What color is the {kind}?", colors[kinds.index(kind)]))
    for color in sorted(COLORS):
        if colors.count(color) == 1:
            out.append(("shape", f"Which shape is {color}?", kinds[colors.index(color)]))
    out.append(("describe", "Describe the image.", describe(shapes)))
    return out


def all_question_texts() -> list[str]:
    """Every question and answer word the grammar can produce (the tokenizer's corpus)."""
    texts = ["How many shapes are there?", "Describe the image."]
    texts += [f"What color is the {k}?" for k in SHAPES]
    texts += [f"Which shape is {c}?" for c in sorted(COLORS)]
    texts += [f" {w}" for w in list(NUMBERS) + list(SHAPES) + sorted(COLORS)]
    texts += [describe([{"shape": k, "color": c}] * n) for k in SHAPES for c in COLORS
              for n in (1, 2, 3)]
    return texts
