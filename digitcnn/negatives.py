"""Shapes that are not digits, MNIST-framed, for outlier exposure: the network learns to be unsure of them.

Outlier exposure (Hendrycks, Mazeika and Dietterich, ICLR 2019): a share of each training batch is
shapes that are not digits, whose target is the uniform distribution over the ten digits, so the
model's top probability on a shape it has not seen as a digit stays low and the calibrated rule of
edge/confidence.py answers "not sure". The model keeps its ten outputs, so export, edge, the page,
Teach and Inside are untouched (an eleventh "not a digit" output would have to pass through all of them).

Families drawn here (`FAMILIES`): letters in the 22 DejaVu faces (Latin, Greek, Cyrillic), letters
drawn with a pen's strokes, scribbles, geometric shapes (stars, arrows, waves, ticks, bars, blots) and
parts of the run's own MNIST training digits (never validation or test images). Every shape is drawn
white on black, warped, and framed by the same `frame_digit` that frames a photo.

Never drawn here, so that bench/not_digits.py measures shapes the network has not trained on:
tests/negatives.py's `symbol` family (#, %, &, @, *, +, hearts, smileys; `DEV_HELD_OUT`). Its letter,
scribble and digit-part families have kin here (`DEV_TRAINED`), drawn by other code from other seeds.
Dots, dashes and specks need no training: edge's shape rules say "no digit" before the model runs.

Letters and parts that are, or are written like, digits are left out: O o Q D (0), I l i j J L T-like
flags (1), Z z (2), S s (5), b G б (6), Γ (mirrored 7), B β (8), g q P p a (9, and 9 mirrored),
З з (3), ч (4), and every part of a 1 (a part of a 1 is a 1), parts that enclose a loop (half an 8 is
a 0) or are as thin as a 1.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge.preprocess import frame_digit
from edge.preprocess.frame import _has_hole

FAMILIES = ("font_letter", "hand_letter", "scribble", "shape", "digit_part")
"""What the training generator draws."""
WEIGHTS = (0.35, 0.25, 0.15, 0.15, 0.1)
"""The share of each family among a run's negatives: few parts of digits, since many look like
digits themselves (the top of an 8 cut off slantwise is a 3; no filter here sees that)."""
DEV_TRAINED = ("letter", "scribble", "digit_part")
"""tests/negatives.py's families with kin among `FAMILIES`."""
DEV_HELD_OUT = ("symbol",)
"""tests/negatives.py's families never drawn here: the honest measure of shapes never trained on."""
FONT_LETTERS = "ACEFHKMNRUVWXYcdefhkmnuvwxyΛΠΣΨΩλπψДЖИЛШЯжлш"
HAND_LETTERS = ("A", "E", "F", "H", "K", "M", "N", "R", "V", "W", "X", "n", "m", "w", "x", "k", "h")
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
SIDE = 112
"""Drawing canvas (pixels); framing shrinks the shape to MNIST's 20 px box."""
SALT = 0x6E6567
"""Keys the generator apart from every other use of the run's seed (the dev set draws from seed 0)."""

# Pen strokes of capital and small letters, in fractions of the canvas (y grows downwards).
_STROKES: dict[str, list[list[tuple[float, float]]]] = {
    "A": [[(0.2, 0.85), (0.5, 0.15), (0.8, 0.85)], [(0.32, 0.6), (0.68, 0.6)]],
    "E": [[(0.72, 0.15), (0.3, 0.15), (0.3, 0.85), (0.72, 0.85)], [(0.3, 0.5), (0.62, 0.5)]],
    "F": [[(0.72, 0.15), (0.3, 0.15), (0.3, 0.85)], [(0.3, 0.5), (0.6, 0.5)]],
    "H": [[(0.28, 0.15), (0.28, 0.85)], [(0.72, 0.15), (0.72, 0.85)], [(0.28, 0.5), (0.72, 0.5)]],
    "K": [[(0.3, 0.15), (0.3, 0.85)], [(0.72, 0.15), (0.3, 0.55)], [(0.42, 0.45), (0.74, 0.85)]],
    "M": [[(0.18, 0.85), (0.22, 0.15), (0.5, 0.6), (0.78, 0.15), (0.82, 0.85)]],
    "N": [[(0.27, 0.85), (0.27, 0.15), (0.73, 0.85), (0.73, 0.15)]],
    "R": [[(0.3, 0.85), (0.3, 0.15), (0.58, 0.15), (0.7, 0.25), (0.7, 0.4), (0.58, 0.5), (0.3, 0.5)],
          [(0.45, 0.5), (0.74, 0.85)]],
    "V": [[(0.2, 0.15), (0.5, 0.85), (0.8, 0.15)]],
    "W": [[(0.12, 0.15), (0.3, 0.85), (0.5, 0.35), (0.7, 0.85), (0.88, 0.15)]],
    "X": [[(0.22, 0.15), (0.78, 0.85)], [(0.78, 0.15), (0.22, 0.85)]],
    "n": [[(0.3, 0.4), (0.3, 0.85)], [(0.3, 0.55), (0.42, 0.42), (0.6, 0.42), (0.7, 0.55), (0.7, 0.85)]],
    "m": [[(0.18, 0.4), (0.18, 0.85)], [(0.18, 0.55), (0.3, 0.42), (0.5, 0.5), (0.5, 0.85)],
          [(0.5, 0.55), (0.62, 0.42), (0.82, 0.5), (0.82, 0.85)]],
    "w": [[(0.15, 0.4), (0.32, 0.85), (0.5, 0.5), (0.68, 0.85), (0.85, 0.4)]],
    "x": [[(0.28, 0.4), (0.72, 0.85)], [(0.72, 0.4), (0.28, 0.85)]],
    "k": [[(0.3, 0.15), (0.3, 0.85)], [(0.68, 0.4), (0.3, 0.65), (0.7, 0.85)]],
    "h": [[(0.3, 0.15), (0.3, 0.85)], [(0.3, 0.55), (0.42, 0.42), (0.6, 0.42), (0.7, 0.55), (0.7, 0.85)]],
}


def training_negatives(count: int, seed: int, digits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`count` negatives, (count, 28, 28) uint8 MNIST-framed, a pure function of the arguments.

    `digits`/`labels` are the run's training digits (parts of them make one family): pass the images
    the run trains on, never its validation or test images.
    """
    rng = np.random.default_rng([seed, SALT])
    kinds = rng.choice(len(FAMILIES), size=count, p=WEIGHTS)
    sources = np.flatnonzero(labels != 1)
    return np.stack([negative(FAMILIES[k], rng, digits, sources) for k in kinds]) if count else \
        np.zeros((0, 28, 28), np.uint8)


def negative(family: str, rng: np.random.Generator, digits: np.ndarray | None = None,
             sources: np.ndarray | None = None) -> np.ndarray:
    """One negative of `family`, 28x28 uint8 framed like MNIST (`digit_part` needs `digits`, and the
    indices among them it may cut, `sources`)."""
    if family == "digit_part":
        return frame_digit(_digit_part(digits, sources, rng))
    if family == "font_letter":
        canvas = _font_letter(rng)
    elif family in ("hand_letter", "scribble", "shape"):
        canvas = Image.new("L", (SIDE, SIDE))
        pen = ImageDraw.Draw(canvas)
        width = int(rng.integers(5, 14))
        if family == "hand_letter":
            letter = HAND_LETTERS[int(rng.integers(len(HAND_LETTERS)))]
            for stroke in _STROKES[letter]:
                _line(pen, [(x + rng.normal(0, 0.02), y + rng.normal(0, 0.02)) for x, y in stroke], width)
        elif family == "scribble":
            _scribble(pen, rng, width)
        else:
            _shape(pen, rng, width)
    else:
        raise ValueError(f"unknown family {family!r}")
    return frame_digit(np.asarray(_warp(canvas, rng), np.float32) / 255.0)


@lru_cache(maxsize=None)
def _fonts() -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, ...]:
    faces = sorted(p for p in FONT_DIR.glob("DejaVu*.ttf") if "Math" not in p.name)
    return tuple(ImageFont.truetype(str(f), 64) for f in faces) or (ImageFont.load_default(64),)


def _font_letter(rng: np.random.Generator) -> Image.Image:
    canvas = Image.new("L", (SIDE, SIDE))
    fonts = _fonts()
    font = fonts[int(rng.integers(len(fonts)))]
    letter = FONT_LETTERS[int(rng.integers(len(FONT_LETTERS)))]
    ImageDraw.Draw(canvas).text((SIDE / 2, SIDE / 2), letter, fill=255, font=font, anchor="mm")
    return canvas


def _line(pen: ImageDraw.ImageDraw, points: list[tuple[float, float]], width: int) -> None:
    """A pen stroke through `points` (fractions of the canvas), with round ends."""
    xy = [(x * SIDE, y * SIDE) for x, y in points]
    pen.line(xy, fill=255, width=width, joint="curve")
    for x, y in (xy[0], xy[-1]):
        pen.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=255)


def _scribble(pen: ImageDraw.ImageDraw, rng: np.random.Generator, width: int) -> None:
    """One to three smooth random walks of many turns (a few turns could make a 7 or a 2)."""
    for _ in range(int(rng.integers(1, 4))):
        n = int(rng.integers(6, 12))
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 1.2, n))
        steps = rng.uniform(0.08, 0.2, n)[:, None] * np.stack([np.cos(heading), np.sin(heading)], 1)
        walk = np.cumsum(steps, 0)
        walk = 0.5 + (walk - walk.mean(0)) * min(1.0, 0.6 / max(np.ptp(walk, 0).max(), 1e-6))
        fine = np.linspace(0, n - 1, 6 * n)  # smoothed: the walk's corners rounded off
        _line(pen, list(zip(np.interp(fine, np.arange(n), walk[:, 0]), np.interp(fine, np.arange(n), walk[:, 1]))),
              width)


def _shape(pen: ImageDraw.ImageDraw, rng: np.random.Generator, width: int) -> None:
    """A star, an arrow, a wave, a tick, two or three bars, or an ink blot. No circles, boxes or
    triangles (0s and closed 4s), no spirals (6s), no upright bars (1s), nothing of `DEV_HELD_OUT`."""
    kind = int(rng.integers(6))
    if kind == 0:  # a five-pointed star, drawn in one stroke or filled
        t = rng.uniform(0, 2 * np.pi) + np.arange(6) * 4 * np.pi / 5
        points = list(zip(0.5 + 0.35 * np.cos(t), 0.5 + 0.35 * np.sin(t)))
        if rng.random() < 0.5:
            _line(pen, points, width)
        else:
            r = np.where(np.arange(10) % 2, 0.15, 0.38)
            t = rng.uniform(0, 2 * np.pi) + np.arange(10) * np.pi / 5
            pen.polygon([(SIDE * (0.5 + a * np.cos(b)), SIDE * (0.5 + a * np.sin(b))) for a, b in zip(r, t)], fill=255)
    elif kind == 1:  # an arrow pointing left or right
        d = 1 if rng.random() < 0.5 else -1
        tip, y = 0.5 + d * 0.35, 0.5 + rng.uniform(-0.05, 0.05)
        _line(pen, [(0.5 - d * 0.35, y), (tip, y)], width)
        _line(pen, [(tip - d * 0.15, y - 0.15), (tip, y), (tip - d * 0.15, y + 0.15)], width)
    elif kind == 2:  # a wave of two to four periods
        x = np.linspace(0.12, 0.88, 60)
        periods, amp = rng.integers(2, 5), rng.uniform(0.06, 0.15)
        _line(pen, list(zip(x, 0.5 + amp * np.sin(2 * np.pi * periods * (x - 0.12) / 0.76))), width)
    elif kind == 3:  # a tick
        _line(pen, [(0.2, 0.55), (0.4, 0.8), (0.82, 0.2)], width)
    elif kind == 4:  # two or three level bars, as in = or a struck-through word
        for y in np.linspace(0.35, 0.65, int(rng.integers(2, 4))):
            _line(pen, [(0.2, y + rng.normal(0, 0.02)), (0.8, y + rng.normal(0, 0.02))], width)
    else:  # an ink blot: a filled polygon of uneven radius
        t = np.sort(rng.uniform(0, 2 * np.pi, 9))
        r = rng.uniform(0.15, 0.38, 9)
        pen.polygon([(SIDE * (0.5 + a * np.cos(b)), SIDE * (0.5 + a * np.sin(b))) for a, b in zip(r, t)], fill=255)


def _digit_part(digits: np.ndarray, sources: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A piece of a training digit cut off by a random straight line, holding 30-60% of its ink; no
    piece that encloses a loop, is as thin as a 1 (at any slant), or spans under 15 px: framing would enlarge it
    bilinearly, and a network taught that soft shapes are not digits would doubt blurred digits (up
    to 20 tries, then the last piece)."""
    ys, xs = np.mgrid[0:28, 0:28]
    for _ in range(20):
        digit = digits[sources[int(rng.integers(len(sources)))]].astype(np.float32)
        angle = rng.uniform(0, np.pi)
        side = (xs - 13.5) * np.cos(angle) + (ys - 13.5) * np.sin(angle)
        ink = digit.sum()
        offsets = np.sort(side[digit > 0])
        weights = np.cumsum(digit[digit > 0][np.argsort(side[digit > 0])]) / max(ink, 1)
        cut = offsets[min(np.searchsorted(weights, rng.uniform(0.3, 0.6)), len(offsets) - 1)]
        part = np.where(side <= cut if rng.random() < 0.5 else side > cut, digit, 0)
        mask = part > 100
        if not mask.any():
            continue
        rows, cols = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
        box = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        spread = np.linalg.eigvalsh(np.cov(np.stack(np.nonzero(mask)).astype(np.float64)))  # a slanted stroke too
        if max(box.shape) >= 15 and spread[0] >= 0.12 * spread[1] and not _has_hole(box):
            break
    return part / 255.0


def _warp(canvas: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The canvas turned, slanted and stretched about its centre, as hands and cameras do."""
    angle, shear = np.radians(rng.uniform(-15, 15)), rng.uniform(-0.3, 0.3)
    sx, sy = rng.uniform(0.75, 1.25, 2)
    cos, sin = np.cos(angle), np.sin(angle)
    a, b, d, e = cos / sx, (sin + shear * cos) / sy, -sin / sx, (cos - shear * sin) / sy
    c = SIDE / 2
    return canvas.transform((SIDE, SIDE), Image.AFFINE, (a, b, c - a * c - b * c, d, e, c - d * c - e * c),
                            resample=Image.BILINEAR)


def with_negatives(x: np.ndarray, y: np.ndarray, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training digits followed by as many negatives, labelled -1, as make `share` of the whole
    (so about `share` of every shuffled batch); labels come back as int64. `share` 0 adds none."""
    count = round(len(x) * share / (1 - share))
    negatives = training_negatives(count, seed, x[y >= 0], y[y >= 0])
    return np.concatenate([x, negatives]), np.concatenate([y.astype(np.int64), np.full(count, -1)])


def record(share: float, images: np.ndarray) -> dict:
    """What a run trained on as negatives (`images`, as `with_negatives` appended them), for its
    metrics.json and the model's metadata; the sha256 of their pixels tells two runs' negatives apart."""
    return {"share": share, "images": len(images), "sha256": hashlib.sha256(images.tobytes()).hexdigest(),
            "families": list(FAMILIES) if len(images) else [], "held_out": list(DEV_HELD_OUT)}
