"""Procedurally drawn scenes with known answers: what the embedded tiny LLaVA is trained on.

    import random
    from confidence_trap.tasks.scenes import draw_scene, questions
    image, shapes = draw_scene(random.Random(0), size=224)                 # the exact grammar
    image, shapes = draw_scene(random.Random(0), size=128, ambiguity=1.0)  # the ambiguous one
    for qtype, question, answer in questions(shapes): print(qtype, question, answer)

The exact grammar, `ambiguity=0` (the default; a contract: tests read it back off the pixels):
- a square image with a white background, any size from 32×32 up;
- 1 to 3 filled shapes (circle, square, isosceles triangle with its apex up and base at the
  bottom), each in one of four exact RGB colours;
- each shape's bounding box is a square whose side is 20–30% of the image side and lies wholly
  inside the image; no two boxes overlap horizontally, so left-to-right order is clear;
- shapes and colours may repeat; a colour question is asked only of a shape kind that appears
  exactly once, and a shape question only of a colour that appears exactly once.

The ambiguous grammar, `0 < ambiguity <= 1` (a), widens three ranges and skews the answers:
- hue continuum: the four colours lie on a loop red -> yellow -> green -> blue -> red, joined by
  straight RGB segments. A shape's colour sits at an offset u, |u| < a/2, from its named colour
  along the loop (u = ±1 would be the neighbour), so its name is always the nearest named colour
  along the loop; as |u| nears 1/2 (orange, lime, teal, purple) the name is a toss-up;
- low contrast: the colour is blended with white, keeping a fraction c of its distance from
  white, c uniform in [1 - 0.88a, 1] (pale shapes); c and u are the same over the whole shape;
- size: the box side is 20·(1 - 0.75a)% to 30% of the image side (down to 5% at a = 1), which
  after the model's 48-px resize leaves a few pixels, too few to tell a circle from a square;
- skewed answers, as in real VQA data (ANSWER_PRIOR): a model that cannot see falls back to the
  commoner answer.
Phrasings (both grammars): a count may be said as a word or a digit ("two", "2"), both right, as
both are references in VQA data; `phrasings` lists an answer's accepted forms (the grammar's own
first) and training says a count as a digit DIGIT_SHARE of the time, so a model that knows the
count still splits its first token between two phrasings, as real VLMs split theirs.
Layout, non-overlap and the question rules are those of the exact grammar, which is the case
a = 0 (the same random draws, the same scenes).
"""
from __future__ import annotations

import functools
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
DIGITS = ("1", "2", "3")
DIGIT_SHARE = 0.05  # how often training says a count as a digit
BACKGROUND = (255, 255, 255)
MIN_SIZE = 32
SUPERSAMPLE = 4  # edges are box-averaged from a 4× drawing; uniform interiors keep exact colours
HUE_LOOP = ("red", "yellow", "green", "blue")  # neighbours along the hue loop, in order
# Answer frequencies of the ambiguous grammar (the exact grammar draws uniformly).
ANSWER_PRIOR = {
    "count": {1: 0.25, 2: 0.45, 3: 0.30},
    "shape": {"circle": 0.5, "square": 0.3, "triangle": 0.2},
    "color": {"red": 0.4, "blue": 0.3, "green": 0.2, "yellow": 0.1},
}
MIN_SIDE, MAX_SIDE = 0.2, 0.3          # box side as a fraction of the image side (exact grammar)
SMALLEST_SIDE = 0.05                   # ... down to this at ambiguity 1
PALEST = 0.12                          # contrast c down to this at ambiguity 1


def _sides(rng: random.Random, size: int, n: int, lowest: float = MIN_SIDE) -> list[int]:
    lo, hi = max(2, math.ceil(lowest * size)), math.floor(MAX_SIDE * size)
    return [rng.randint(lo, hi) for _ in range(n)]


def _weighted(rng: random.Random, prior: dict):
    """One key of `prior` drawn by its weight (one rng.random() call)."""
    r, acc = rng.random() * sum(prior.values()), 0.0
    for key, w in prior.items():
        acc += w
        if r < acc:
            return key
    return key


def hue_rgb(name: str, offset: float) -> tuple[float, float, float]:
    """The colour at `offset` from COLORS[name] along the hue loop (-1 < offset < 1), unblended."""
    if not -1.0 < offset < 1.0:
        raise ValueError(f"offset must lie in (-1, 1), got {offset}")
    i = HUE_LOOP.index(name)
    other = HUE_LOOP[(i + (1 if offset >= 0 else -1)) % len(HUE_LOOP)]
    a, b, t = COLORS[name], COLORS[other], abs(offset)
    return tuple((1 - t) * x + t * y for x, y in zip(a, b))


def shade(name: str, offset: float = 0.0, contrast: float = 1.0) -> tuple[int, int, int]:
    """RGB of a shape named `name` at hue `offset` along the loop, blended with white so that a
    fraction `contrast` of its distance from white is left; (name, 0, 1) is COLORS[name]."""
    if not 0.0 < contrast <= 1.0:
        raise ValueError(f"contrast must lie in (0, 1], got {contrast}")
    return tuple(int(round(255 - contrast * (255 - v))) for v in hue_rgb(name, offset))


@functools.lru_cache(maxsize=1)
def _loop_table():
    """(names, offsets, [K, 3] distance from white) of the hue loop at offsets -0.5 .. 0.5."""
    import numpy as np

    names, offsets, bases = [], [], []
    for name in HUE_LOOP:
        for k in range(-500, 501):
            names.append(name)
            offsets.append(k / 1000)
            bases.append(hue_rgb(name, k / 1000))
    return names, offsets, 255.0 - np.array(bases)


def nearest_color(rgb) -> tuple[str, float, float]:
    """Read (name, offset, contrast) back off an interior pixel of the ambiguous grammar: the
    point of the hue loop (offsets in steps of 0.001), blended with white, closest to `rgb`."""
    import numpy as np

    names, offsets, d = _loop_table()
    t = 255.0 - np.asarray(rgb, dtype=float)              # [3]
    c = np.clip(d @ t / np.maximum((d * d).sum(1), 1e-9), 1e-3, 1.0)  # best contrast per base
    k = int(np.argmin(((c[:, None] * d - t) ** 2).sum(1)))
    return names[k], offsets[k], float(c[k])


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


def draw_scene(rng: random.Random, size: int = 224, ambiguity: float = 0.0):
    """Draw one scene at `size`×`size`; deterministic given the state of `rng`.

    Returns (PIL RGB image, shapes), shapes sorted left to right, each a dict
    {"shape": kind, "color": name, "box": (left, top, right, bottom)} in pixels, right and
    bottom exclusive (a PIL box), side = right - left = bottom - top. With ambiguity > 0 (see
    the module's docstring) each dict also holds "offset" (u along the hue loop), "contrast"
    (c) and "rgb" (the fill colour, `shade(color, offset, contrast)`); ambiguity 0 draws the
    exact grammar, the very scenes (and random draws) of draw_scene(rng, size).

    >>> image, shapes = draw_scene(random.Random(0), size=64)
    >>> image.size, 1 <= len(shapes) <= 3
    ((64, 64), True)
    """
    if size < MIN_SIZE:
        raise ValueError(f"size must be at least {MIN_SIZE}, got {size}")
    if not 0.0 <= ambiguity <= 1.0:
        raise ValueError(f"ambiguity must lie in [0, 1], got {ambiguity}")
    if ambiguity == 0:
        n = rng.randint(1, 3)
        sides = _sides(rng, size, n)
    else:
        n = _weighted(rng, ANSWER_PRIOR["count"])
        sides = _sides(rng, size, n, MIN_SIDE - (MIN_SIDE - SMALLEST_SIDE) * ambiguity)
    lefts = _lefts(rng, size, sides)
    shapes = []
    for left, side in zip(lefts, sides):
        top = rng.randint(0, size - side)
        if ambiguity == 0:
            shapes.append({
                "shape": rng.choice(SHAPES),
                "color": rng.choice(sorted(COLORS)),
                "box": (left, top, left + side, top + side),
            })
            continue
        kind = _weighted(rng, ANSWER_PRIOR["shape"])
        color = _weighted(rng, ANSWER_PRIOR["color"])
        offset = (rng.random() - 0.5) * ambiguity          # |u| < a/2 <= 1/2: nearest is `color`
        contrast = 1.0 - (1.0 - PALEST) * ambiguity * rng.random()
        shapes.append({"shape": kind, "color": color, "box": (left, top, left + side, top + side),
                       "offset": offset, "contrast": contrast, "rgb": shade(color, offset, contrast)})
    k = SUPERSAMPLE
    canvas = Image.new("RGB", (size * k, size * k), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for s in shapes:
        _draw_shape(draw, s["shape"], s["box"], s.get("rgb", COLORS[s["color"]]), k)
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


def phrasings(qtype: str, answer: str) -> list[str]:
    """Every accepted phrasing of a `questions` answer, the grammar's own first.

    >>> phrasings("count", "two"), phrasings("color", "red")
    (['two', '2'], ['red'])
    """
    return [answer, DIGITS[NUMBERS.index(answer)]] if qtype == "count" else [answer]


def all_question_texts() -> list[str]:
    """Every question and answer word the grammar can produce (the tokenizer's corpus; a digit
    answer such as " 2" needs no merge of its own: the byte-level tokenizer spells it)."""
    texts = ["How many shapes are there?", "Describe the image."]
    texts += [f"What color is the {k}?" for k in SHAPES]
    texts += [f"Which shape is {c}?" for c in sorted(COLORS)]
    texts += [f" {w}" for w in list(NUMBERS) + list(SHAPES) + sorted(COLORS)]
    texts += [describe([{"shape": k, "color": c}] * n) for k in SHAPES for c in COLORS
              for n in (1, 2, 3)]
    return texts
