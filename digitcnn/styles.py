"""Handwriting MNIST has little of, drawn onto a share of its training 1s, 4s, 7s and 9s before training.

MNIST's writers were American. Elsewhere a 7 is crossed, a 1 has an up-stroke flag (and often a foot),
a 4 is closed in a triangle or open at its top, and a 9's tail curls left under its head as in a "g",
drops straight down, or leaves the loop on the left: an MNIST model reads these as 4, 7, 9 or 3
(Semeion's Italian writers, real photos; docs/benchmarks.md). Here a stroke of the digit's own width
is drawn onto MNIST's own digits (a 4's arm and a 9's stem first erased where the style replaces them,
or the 9 mirrored), and the digit moved to MNIST's centre of mass, never resampled: resampling softens
a digit, and a network taught on softer styled digits reads blurred digits as them. So the network
learns the style with every other trait of the digit left as its writer made it.

A 1's flag is the risk: a 1 with a long flag is a 7 turned by 30 degrees, and a network taught such
1s read turned 7s as 1s. The flag here is short and steep (FLAG_ANGLE, FLAG_LENGTH), where a 7's bar
is long and meets its stem at a wide angle whichever way the 7 is turned; tests/test_styles.py measures
both on MNIST's 7s turned by the warps' rotation. A 1 with a flag and a bar across its stem is not
drawn: that is a continental 7.

Deterministic (numpy's generator seeded by the run's seed) and done once per run, in numpy and
Pillow, before the random warps of `digitcnn/augment.py`, which then apply to these digits as well.
On by default at a share of 0.3 of each styled digit, crossed 7s and the 9s but for the straight
ones (DEFAULT_STYLES; `Augmentation.styles`, `train --styles`; any style by name with `train --style`): 0.3 of the 7s and 9s took Semeion up about one and a half points
at a cost to MNIST within 0.04 (docs/benchmarks.md), and leaves 70% of each digit as MNIST's writers
made it.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from edge.errors import UserError
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


def _with_strokes(digit: np.ndarray, strokes: list[list[Point]], rows: np.ndarray | None = None,
                  framed: bool = True) -> np.ndarray:
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
    ink = np.maximum(np.pad(digit.astype(np.float32), PAD), drawn)
    return _framed(ink) if framed else np.round(ink[PAD:-PAD, PAD:-PAD]).astype(np.uint8)


def _framed(ink: np.ndarray) -> np.ndarray:
    """Ink (0..255, black around it) framed like MNIST. Ink that still fits MNIST's 20 px box is only
    moved, to centre its mass: resampling would soften MNIST's own pixels, and the network then takes
    softness for a mark of the style (blurred digits read as the styled ones). Bigger ink is scaled
    into the box as the edge frames a photo."""
    ys, xs = np.nonzero(ink > 0)
    crop = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1] / 255.0
    return centre(crop) if max(crop.shape) <= BOX else frame_digit(crop)


def _bar(digit: np.ndarray, rng: np.random.Generator, reach: tuple[float, float]) -> list[Point] | None:
    """A bar across the digit's stem a little over halfway down, reaching `reach` (a range, in shares of the
    digit's height) to each side; None where that row is not a single stroke. It stays within MNIST's box,
    counting the pen's round ends, and tilts by up to 10 degrees as a hand's does."""
    xs, ys = _ink(digit)
    top, height = ys.min(), ys.max() - ys.min()
    row = int(round(top + rng.uniform(0.45, 0.6) * height))
    x = _stem_at(digit, row)
    if x is None:
        return None
    pen = _stroke_width(digit) / 2
    half = min(rng.uniform(*reach) * height, x - (xs.max() - BOX + 1) - pen, xs.min() + BOX - 1 - x - pen)
    tilt = np.tan(np.radians(rng.uniform(-10, 10))) * half
    return [(x - half, row + tilt), (x + half, row - tilt)]


def crossed_seven(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 7 with a bar across its stem, as long as people cross them (half to three quarters of the 7's
    height: shorter bars, tried first, left real crossed 7s read as 4); None where that row is not a stem."""
    bar = _bar(digit, rng, (0.25, 0.38))
    return None if bar is None else _with_strokes(digit, [bar])


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


def _hole(digit: np.ndarray) -> np.ndarray:
    """The background the ink encloses (a loop's inside): what a flood from the image's border cannot reach."""
    ink = digit > INK
    outside = np.zeros_like(ink)
    outside[[0, -1], :] = outside[:, [0, -1]] = True
    outside &= ~ink
    while True:
        grown = outside.copy()
        grown[1:] |= outside[:-1]
        grown[:-1] |= outside[1:]
        grown[:, 1:] |= outside[:, :-1]
        grown[:, :-1] |= outside[:, 1:]
        grown &= ~ink
        if (grown == outside).all():
            return ~ink & ~outside
        outside = grown


def straight_nine(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 9 whose stem drops straight down from the right of its loop, as in print: the ink below the loop
    gives way to a vertical stroke to the digit's last row; None where the loop is not closed."""
    hole = _hole(digit)
    if np.count_nonzero(hole) < 3:
        return None
    rows = np.nonzero(hole.any(axis=1))[0]
    pen = _stroke_width(digit)
    middle, below = int(rows.mean()), int(rows[-1] + np.ceil(pen))
    bottom = int(_ink(digit)[1].max())
    if bottom - below < 0.25 * (bottom - _ink(digit)[1].min()):  # no stem to straighten
        return None
    right = np.nonzero(digit[middle] > INK)[0].max() - pen / 2 + 0.5  # the loop's right stroke
    head = digit.copy()
    head[below + 1:] = 0
    return _with_strokes(head, [[(right, middle), (right, bottom)]], rows=digit)


def _four(digit: np.ndarray) -> tuple[np.ndarray, float, Point, Point] | None:
    """A 4's parts: the digit without the arm left of its stem above the bar, the bar's row, the stem's top
    (raised to the digit's top row) and the bar's left end; None where a bar or a stem is not found."""
    xs, ys = _ink(digit)
    top, bottom = int(ys.min()), int(ys.max())
    height, pen = bottom - top, _stroke_width(digit)
    ink = digit > INK
    band = range(int(top + 0.3 * height), int(top + 0.8 * height) + 1)
    spans = [np.ptp(np.nonzero(ink[r])[0]) if ink[r].any() else 0 for r in band]
    bar = band[int(np.argmax(spans))]
    if max(spans) < 0.4 * (xs.max() - xs.min()):
        return None
    stem = [(r, x) for r in range(int(bar + pen) + 1, bottom + 1) if (x := _stem_at(digit, r)) is not None]
    if len(stem) < 3:
        return None
    slope, offset = np.polyfit(*np.array(stem, np.float64).T, 1)
    stem_x = lambda r: slope * r + offset  # noqa: E731
    apex = bar
    while apex > top and (np.abs(np.nonzero(ink[apex - 1])[0] - stem_x(apex - 1)) <= pen).any():
        apex -= 1
    armless = digit.copy()
    for r in range(top, int(bar - pen)):
        armless[r, : max(0, int(stem_x(r) - pen))] = 0
    left = float(np.nonzero(ink[bar])[0].min())
    if stem_x(bar) - left < 0.3 * height:  # a bar hardly left of the stem: no triangle to draw
        return None
    armless = _with_strokes(armless, [[(stem_x(apex), apex), (stem_x(top), top)]], rows=digit, framed=False)
    return armless, bar, (stem_x(top), top), (left, bar)


def closed_four(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A closed, triangular 4: its arm runs straight from the stem's top down to the bar's left end."""
    parts = _four(digit)
    if parts is None:
        return None
    armless, _, apex, left = parts
    return _with_strokes(armless, [[apex, left]], rows=digit)


def open_four(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """An open-top 4 as in print: a slanted arm down to the bar's left end, its top short of the stem."""
    parts = _four(digit)
    if parts is None:
        return None
    armless, _, apex, left = parts
    t = rng.uniform(0.3, 0.45)  # where on the closed 4's arm this one starts
    start = (apex[0] + t * (left[0] - apex[0]) - _stroke_width(digit), apex[1] + t * (left[1] - apex[1]))
    return _with_strokes(armless, [[start, left]], rows=digit)


def _foot(digit: np.ndarray, rng: np.random.Generator) -> list[Point] | None:
    """A base serif across the digit's last row, centred on its stem; None where that row is not a stem."""
    xs, ys = _ink(digit)
    bottom, height = int(ys.max()), ys.max() - ys.min()
    x = _stem_at(digit, bottom)
    if x is None:
        return None
    half = min(rng.uniform(0.2, 0.3) * height, 0.5 * BOX - 1 - _stroke_width(digit) / 2)
    return [(x - half, bottom), (x + half, bottom)]


FLAG_ANGLE = (20.0, 38.0)
"""Degrees between a 1's flag and its stem, both from the stem's top. An MNIST 7's bar meets its stem at
about 55 degrees, and turning a 7 does not change that angle: so the flag is steep (tests/test_styles.py
measures both on MNIST's 7s, turned by the warps' rotation)."""
FLAG_LENGTH = (0.2, 0.33)
"""A flag's length in shares of the 1's stem; an MNIST 7's bar is typically 0.6 of its stem."""


def _flag(digit: np.ndarray, rng: np.random.Generator) -> list[Point] | None:
    """A continental 1's up-stroke: from the top of its stem down to the left, at an angle to the stem (its
    principal axis, as slanted as the writer's 1) of FLAG_ANGLE and a length of FLAG_LENGTH; None where it
    has no room left of the stem within MNIST's box."""
    xs, ys = _ink(digit)
    centre_ = np.array([xs.mean(), ys.mean()])
    _, _, axes = np.linalg.svd(np.stack([xs, ys], axis=1) - centre_, full_matrices=False)
    down = axes[0] if axes[0][1] > 0 else -axes[0]
    along = (np.stack([xs, ys], axis=1) - centre_) @ down
    top, length = centre_ + along.min() * down, along.max() - along.min()
    angle = np.radians(rng.uniform(*FLAG_ANGLE))
    flag = np.array([down[0] * np.cos(angle) - down[1] * np.sin(angle),
                     down[0] * np.sin(angle) + down[1] * np.cos(angle)])
    reach = rng.uniform(*FLAG_LENGTH) * length
    if flag[0] < 0:  # within the box on the left, counting the pen's round end
        reach = min(reach, (top[0] - (xs.max() - BOX + 1) - _stroke_width(digit)) / -flag[0])
    if reach < 0.15 * length:
        return None
    return [tuple(top + reach * flag), tuple(top)]


def footed_one(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 1 standing on a base serif (a foot) across its last row; None where that row is not a stem."""
    foot = _foot(digit, rng)
    return None if foot is None else _with_strokes(digit, [foot])


def flagged_one(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A continental 1: an up-stroke flag into the top of the stem, and a foot."""
    flag, foot = _flag(digit, rng), _foot(digit, rng)
    return None if flag is None or foot is None else _with_strokes(digit, [flag, foot])


def upstroke_one(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A continental 1 with its up-stroke flag alone: the steep, short flag keeps it apart from a turned 7."""
    flag = _flag(digit, rng)
    return None if flag is None else _with_strokes(digit, [flag])


Style = Callable[[np.ndarray, np.random.Generator], "np.ndarray | None"]
STYLES: dict[str, tuple[int, Style]] = {style.__name__: (digit, style) for digit, style in (
    (1, footed_one), (1, flagged_one), (1, upstroke_one), (4, closed_four), (4, open_four),
    (7, crossed_seven), (9, curled_nine), (9, mirrored_nine), (9, straight_nine))}
"""Every style by name, with the digit it is drawn on. A styled digit takes one of its digit's chosen
styles, at random; each can be left out by name (`Augmentation.style_names`, `train --style`)."""
DEFAULT_STYLES = ("crossed_seven", "curled_nine", "mirrored_nine")
"""The styles a run draws unless told (`train --style`). The 1s, the 4s and the straight 9s are drawn on
request only: with them all, one seed read MNIST at 99.47% and Semeion at 93.8/94.0%, against 99.58% and
94.9/95.2% with these three (docs/benchmarks.md, "Real input: what each part buys")."""


def check_names(names: Sequence[str]) -> None:
    """A one-line error for a style name this code does not draw (a typo, or a run recorded by other code)."""
    unknown = sorted(set(names) - set(STYLES))
    if unknown:
        raise UserError(f"unknown style {', '.join(unknown)} (known: {', '.join(STYLES)})")


def restyle(x: np.ndarray, y: np.ndarray, share: float, seed: int, names: Sequence[str] = tuple(STYLES)
             ) -> np.ndarray:
    """A copy of the uint8 digits `x` in which about `share` of each styled digit's images carry one of
    the styles `names` (all by default) drawn on that digit."""
    check_names(names)
    by_digit: dict[int, list[Style]] = {}
    for name in STYLES:  # in STYLES' order, whatever the order of `names`: the same run, the same digits
        if name in names:
            by_digit.setdefault(STYLES[name][0], []).append(STYLES[name][1])
    rng = np.random.default_rng(seed)
    x = x.copy()
    for digit, styles in sorted(by_digit.items()):
        chosen = np.nonzero(y == digit)[0]
        for i in rng.choice(chosen, int(share * len(chosen)), replace=False):
            style = styles[int(rng.integers(len(styles)))]
            if np.count_nonzero(x[i] > INK) < 3:  # no strokes to find
                continue
            drawn = style(x[i], rng)
            if drawn is not None:
                x[i] = drawn
    return x
