"""Handwriting MNIST has little of, drawn onto a share of its training digits before training.

MNIST's writers were American. Elsewhere a 1 starts with a long up-stroke (and may stand on a foot),
a 7 is crossed, and a 9's tail curls left under its head as in a "g" or its stem leaves the loop on
the left: an MNIST model reads these as 7 or 4, as 4 or 2, and as 3 or 8 (Semeion's Italian writers,
photos-dev; README, Evaluate). Here a
stroke of the digit's own width is drawn onto MNIST's own 1s, 7s and 9s, at random lengths and
angles, and the result framed as MNIST frames digits (only moved while it fits MNIST's box, else
scaled as edge's `frame_digit` does), so the network learns the style with every other trait of the
digit left as its writer made it.

Deterministic (numpy's generator seeded by the run's seed) and done once per run, in numpy and
Pillow, before the random warps of `digitcnn/augment.py`, which then apply to these digits as well.
Off by default (`Augmentation.styles`, `train --styles`): a share of 0.3 takes Semeion up about two
points and costs MNIST about 0.1 (README, Training).
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


def _with_strokes(digit: np.ndarray, strokes: list[list[Point]], taller: bool = False) -> np.ndarray:
    """The digit with polylines (in its pixel coordinates) drawn in its own stroke width, MNIST-framed.
    Unless `taller`, the new ink is kept within the digit's rows: a round pen end poking a pixel above a
    1's top would make it too tall for MNIST's box, and resampling it soften the whole digit."""
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
    if not taller:
        rows = np.nonzero(digit.any(axis=1))[0] + PAD
        drawn[:rows[0]] = drawn[rows[-1] + 1:] = 0
    return _framed(np.maximum(np.pad(digit.astype(np.float32), PAD), drawn))


def _framed(ink: np.ndarray) -> np.ndarray:
    """Ink (0..255, black around it) framed like MNIST. Ink that still fits MNIST's 20 px box is only
    moved, to centre its mass: resampling would soften MNIST's own pixels, and the network then takes
    softness for a mark of the style (blurred 2s, 3s and 7s read as 1s). Bigger ink is scaled into
    the box as the edge frames a photo."""
    ys, xs = np.nonzero(ink > 0)
    crop = ink[ys.min():ys.max() + 1, xs.min():xs.max() + 1] / 255.0
    return centre(crop) if max(crop.shape) <= BOX else frame_digit(crop)


def continental_one(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 1 with an up-stroke into its top from the lower left (a quarter to 0.6 of its height), and a
    foot one time in four; None for a 1 slanted so far that the up-stroke would make it a 7."""
    xs, ys = _ink(digit)
    height = ys.max() - ys.min()
    centred = np.stack([xs - xs.mean(), ys - ys.mean()])
    stem = np.linalg.eigh(centred @ centred.T)[1][:, -1]  # the 1's direction
    stem = stem if stem[1] > 0 else -stem  # pointing down
    lean = np.degrees(np.arctan2(-stem[0], stem[1]))  # from straight down, positive when the foot is left
    angle = rng.uniform(20, 55)  # the up-stroke's, from straight down towards the left
    if angle - lean < 15:
        return None
    along = stem @ centred
    top = np.array([xs[along.argmin()], ys[along.argmin()]])
    direction = np.array([-np.sin(np.radians(angle)), np.cos(np.radians(angle))])
    strokes = [[tuple(top), tuple(top + rng.uniform(0.25, 0.6) * height * direction)]]
    if rng.uniform() < 0.25:
        foot = np.array([xs[along.argmax()], ys[along.argmax()]])
        half = rng.uniform(0.15, 0.25) * height
        strokes.append([(foot[0] - half, foot[1]), (foot[0] + half, foot[1])])
    return _with_strokes(digit, strokes)


def crossed_seven(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 7 with a bar across its stem, a little over halfway down; None where that row is not a stem."""
    xs, ys = _ink(digit)
    top, height = ys.min(), ys.max() - ys.min()
    row = int(round(top + rng.uniform(0.45, 0.6) * height))
    cols = np.nonzero(digit[row] > INK)[0]
    if len(cols) == 0 or cols.max() - cols.min() > 6:
        return None
    x, half = cols.mean(), rng.uniform(0.17, 0.27) * height
    tilt = np.tan(np.radians(rng.uniform(-10, 10))) * half
    return _with_strokes(digit, [[(x - half, row + tilt), (x + half, row - tilt)]])


def curled_nine(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """A 9 whose tail curls on from its foot, left under the head and up, as in a "g"."""
    xs, ys = _ink(digit)
    height, width = ys.max() - ys.min(), xs.max() - xs.min()
    fx, fy = xs[ys.argmax()], ys.max()
    rx = rng.uniform(0.3, 0.5) * max(width, 0.5 * height)
    ry = rng.uniform(0.08, 0.2) * height
    t = np.linspace(0.0, rng.uniform(0.65, 0.95) * np.pi, 12)  # from the foot, down, left and up
    return _with_strokes(digit, [list(zip(fx - rx + rx * np.cos(t), fy + ry * np.sin(t)))], taller=True)


def mirrored_nine(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 9 whose stem leaves its loop on the left, as some write it: its mirror image, centred again
    (mirroring moves the centre of mass off MNIST's centre)."""
    return _framed(digit[:, ::-1].astype(np.float32))


Style = Callable[[np.ndarray, np.random.Generator], "np.ndarray | None"]
STYLES: dict[int, tuple[Style, ...]] = {1: (continental_one,), 7: (crossed_seven,), 9: (curled_nine, mirrored_nine)}
"""Each styled digit takes one of its digit's styles, at random."""


def restyle(x: np.ndarray, y: np.ndarray, share: float, seed: int) -> np.ndarray:
    """A copy of the uint8 digits `x` in which about `share` of the 1s, 7s and 9s carry their style."""
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
