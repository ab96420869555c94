"""Handwriting MNIST has little of, drawn onto a share of its training 7s and 9s before training.

MNIST's writers were American. Elsewhere a 7 is crossed, and a 9's tail curls left under its head as
in a "g", or its stem leaves the loop on the left: an MNIST model reads these as 4 or 2, and as 3 or 8
(Semeion's Italian writers; docs/benchmarks.md, Evaluate). Here a stroke of the digit's own width is drawn onto
MNIST's own 7s and 9s (or the 9 mirrored), and the digit moved to MNIST's centre of mass, never
resampled: resampling softens a digit, and a network taught on softer styled digits reads blurred
digits as them. So the network learns the style with every other trait of the digit left as its
writer made it.

Deterministic (numpy's generator seeded by the run's seed) and done once per run, in numpy and
Pillow, before the random warps of `digitcnn/augment.py`, which then apply to these digits as well.
Off by default (`Augmentation.styles`, `train --styles`): a share of 0.3 takes Semeion up about one
and a half points and costs MNIST up to 0.04 (docs/benchmarks.md). Continental 1s (a long up-stroke
into the top) were drawn too and dropped: such a 1 is a 7 turned by 30 degrees, and the network
then read turned 7s as 1s. 1s with a foot, with or without a continental flag, are drawn here
(`CANDIDATES`) but not yet trained on.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from edge.preprocess import centre, frame_digit
from edge.preprocess.frame import BOX

INK = 100
"""Gray level above which a pixel of an MNIST digit counts as its ink, for finding its strokes."""
SUPERSAMPLE = 4
"""Strokes are drawn this many times larger, then area-averaged down: anti-aliased like MNIST's."""
PAD = 10
"""Room around the 28x28 digit for a stroke that reaches past it, before framing shrinks it back."""
Point = tuple[float, float]


def _ink(digit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.nonzero(digit > INK)
    return xs.astype(np.float64), ys.astype(np.float64)


def _stroke_width(digit: np.ndarray) -> float:
    """Twice the ink's area over its outline: the digit's mean stroke width in pixels."""
    m = np.pad(digit > INK, 1)
    outline = np.count_nonzero(m[1:] != m[:-1]) + np.count_nonzero(m[:, 1:] != m[:, :-1])
    return float(np.clip(2.0 * np.count_nonzero(m) / max(outline, 1), 1.5, 3.5))


def _stem_at(digit: np.ndarray, row: int) -> float | None:
    """The column of the digit's single stroke crossing `row`, or None where the row holds no ink or more
    than one stroke's width of it (a bar or a curl is drawn from a stem, not from a loop or a join)."""
    cols = np.nonzero(digit[row] > INK)[0]
    return None if len(cols) == 0 or cols.max() - cols.min() > 6 else float(cols.mean())


def _with_strokes(digit: np.ndarray, strokes: list[list[Point]], rows: np.ndarray | None = None) -> np.ndarray:
    """The digit with polylines (in its pixel coordinates) drawn in its own stroke width, MNIST-framed.
    The new ink is kept within the rows of `rows` (default: the digit's): a round pen end poking a pixel
    past them would make the digit too tall for MNIST's box, and resampling it soften the whole digit."""
    side = (28 + 2 * PAD) * SUPERSAMPLE
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    width = _stroke_width(digit) * SUPERSAMPLE
    for line in strokes:
        points = [((x + PAD) * SUPERSAMPLE, (y + PAD) * SUPERSAMPLE) for x, y in line]
        draw.line(points, fill=255, width=max(1, round(width)), joint="curve")
        for x, y in (points[0], points[-1]):  # round pen ends
            draw.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=255)
    drawn = np.asarray(canvas.resize((28 + 2 * PAD, 28 + 2 * PAD), Image.BOX), np.float32)
    kept = np.nonzero((digit if rows is None else rows).any(axis=1))[0] + PAD
    drawn[:kept[0]] = drawn[kept[-1] + 1:] = 0
    return _framed(np.maximum(np.pad(digit.astype(np.float32), PAD), drawn))


def _framed(ink: np.ndarray) -> np.ndarray:
    """Ink (0..255, black around it) framed like MNIST. Ink that still fits MNIST's 20 px box is only
    moved, to centre its mass: resampling would soften MNIST's own pixels, and the network then takes
    softness for a mark of the style (blurred digits read as the styled ones). Bigger ink is scaled
    into the box as the edge frames a photo."""
    ys, xs = np.nonzero(ink > 0)
    crop = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1] / 255.0
    return centre(crop) if max(crop.shape) <= BOX else frame_digit(crop)


def crossed_seven(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 7 with a bar across its stem, a little over halfway down; None where that row is not a stem."""
    xs, ys = _ink(digit)
    top, height = ys.min(), ys.max() - ys.min()
    row = int(round(top + rng.uniform(0.45, 0.6) * height))
    x = _stem_at(digit, row)
    if x is None:
        return None
    half = rng.uniform(0.17, 0.27) * height
    pen = _stroke_width(digit) / 2  # the bar stays within MNIST's box, counting the pen's round ends
    half = min(half, x - (xs.max() - BOX + 1) - pen, xs.min() + BOX - 1 - x - pen)
    tilt = np.tan(np.radians(rng.uniform(-10, 10))) * half
    return _with_strokes(digit, [[(x - half, row + tilt), (x + half, row - tilt)]])


def curled_nine(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 9 whose tail curls on, left under the head and up, as in a "g". The stem's last rows give way
    to the curl, so the digit keeps its height and is only moved, never resampled; None where those
    rows are not a single stroke."""
    xs, ys = _ink(digit)
    height, width = ys.max() - ys.min(), xs.max() - xs.min()
    ry = rng.uniform(0.08, 0.2) * height
    start = int(round(ys.max() - ry))
    fx = _stem_at(digit, start)
    if fx is None:
        return None
    stem = digit.copy()
    stem[start + 1:] = 0
    # As wide as the head, but no wider than MNIST's box (counting the pen's round end).
    room = fx - (xs.max() - BOX + 1) - _stroke_width(digit)
    rx = min(rng.uniform(0.3, 0.5) * max(width, 0.5 * height), room / 2)
    t = np.linspace(0.0, rng.uniform(0.65, 0.95) * np.pi, 12)  # from the stem, down, left and up
    return _with_strokes(stem, [list(zip(fx - rx + rx * np.cos(t), start + ry * np.sin(t)))], rows=digit)


def mirrored_nine(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 9 whose stem leaves its loop on the left, as some write it: its mirror image, centred again
    (mirroring moves the centre of mass off MNIST's centre)."""
    return _framed(digit[:, ::-1].astype(np.float32))


def _foot(digit: np.ndarray, rng: np.random.Generator) -> list[Point] | None:
    """A base serif across the digit's last row, centred on its stem; None where that row is not a stem."""
    xs, ys = _ink(digit)
    bottom, height = int(ys.max()), ys.max() - ys.min()
    x = _stem_at(digit, bottom)
    if x is None:
        return None
    half = min(rng.uniform(0.2, 0.3) * height, 0.5 * BOX - 1 - _stroke_width(digit) / 2)
    return [(x - half, bottom), (x + half, bottom)]


def footed_one(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 1 standing on a base serif (a foot) across its last row; None where that row is not a stem."""
    foot = _foot(digit, rng)
    return None if foot is None else _with_strokes(digit, [foot])


def flagged_one(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A continental 1: a flag from the top of the stem down to the left, and a foot. Never the long
    up-stroke alone (a 7 turned by 30 degrees): the foot keeps it a 1."""
    xs, ys = _ink(digit)
    top, height = int(ys.min()), ys.max() - ys.min()
    x, foot = _stem_at(digit, top), _foot(digit, rng)
    if x is None or foot is None:
        return None
    length, angle = rng.uniform(0.25, 0.4) * height, np.radians(rng.uniform(25, 50))
    length = min(length, (x - (xs.max() - BOX + 1) - _stroke_width(digit)) / np.cos(angle))
    return _with_strokes(digit, [[(x - length * np.cos(angle), top + length * np.sin(angle)), (x, top)], foot])


Style = Callable[[np.ndarray, np.random.Generator], "np.ndarray | None"]
STYLES: dict[int, tuple[Style, ...]] = {7: (crossed_seven,), 9: (curled_nine, mirrored_nine)}
"""Each styled digit takes one of its digit's styles, at random."""
CANDIDATES: dict[int, tuple[Style, ...]] = {1: (footed_one, flagged_one)}
"""Drawn and tested, not yet in STYLES: what they cost MNIST and buy Semeion and photos needs trainings of
seeds 1-3 with them (the 1s especially: a 1 must not become a turned 7)."""


def restyle(x: np.ndarray, y: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A copy of the uint8 digits `x` in which about `share` of the 7s and 9s carry their style."""
    rng = np.random.default_rng(seed)
    x = x.copy()
    for digit, styles in STYLES.items():
        chosen = np.nonzero(y == digit)[0]
        for i in rng.choice(chosen, int(share * len(chosen)), replace=False):
            style = styles[int(rng.integers(len(styles)))]
            if np.count_nonzero(x[i] > INK) < 3:  # no strokes to find
                continue
            drawn = style(x[i], rng)
            if drawn is not None:
                x[i] = drawn
    return x
