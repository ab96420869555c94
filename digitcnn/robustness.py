"""How accuracy degrades when digits stop looking like MNIST: one row per corruption of the test set.

Corruptions use numpy and Pillow only and are deterministic (each draws from its own seeded
generator), so a table can be compared across models and runs. Most are fed to the model as they
are, to measure the network itself; the canvas rows put the digit on a larger image that must go
through `predict`'s preprocessing (`to_mnist`) first, to measure the pipeline a user gets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageFilter

from digitcnn.evaluate import Model, evaluate
from edge.labelled import Labelled, frame
from edge.preprocess import SIZE

CANVAS = 84  # side of the larger image a digit is placed on


@dataclass(frozen=True)
class Corruption:
    name: str
    apply: Callable[[np.ndarray, np.random.Generator], np.ndarray]  # uint8 (n, 28, 28) -> uint8 (n, h, w)
    preprocess: bool = False  # the result is a whole image: frame it with to_mnist, as predict does


def _each(images: np.ndarray, change: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(change(Image.fromarray(a))) for a in images])


def _affine(angle: float = 0.0, scale: float = 1.0, shift: tuple[float, float] = (0.0, 0.0)):
    """Rotate by `angle` degrees counter-clockwise and scale about the centre, then shift (right, down)."""
    a = math.radians(angle)
    cos, sin = math.cos(a) / scale, math.sin(a) / scale
    cx, cy = SIZE / 2 + shift[0], SIZE / 2 + shift[1]
    # Pillow maps each output pixel back to the input: the inverse of the change described above.
    inverse = (cos, -sin, SIZE / 2 - cos * cx + sin * cy, sin, cos, SIZE / 2 - sin * cx - cos * cy)
    return lambda x, rng: _each(x, lambda im: im.transform(im.size, Image.AFFINE, inverse, Image.BILINEAR))


def _filter(image_filter: ImageFilter.Filter):
    return lambda x, rng: _each(x, lambda im: im.filter(image_filter))


def _noise(sigma: float):
    return lambda x, rng: np.clip(x + rng.normal(0.0, sigma, x.shape), 0, 255).astype(np.uint8)


def _on_canvas(scale: float, anywhere: bool):
    """The digit resized by `scale` on a black CANVAS x CANVAS image, centred or at a random place."""
    def apply(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        side = round(SIZE * scale)
        out = np.zeros((len(x), CANVAS, CANVAS), np.uint8)
        for canvas, digit in zip(out, x):
            top, left = rng.integers(0, CANVAS - side + 1, 2) if anywhere else ((CANVAS - side) // 2,) * 2
            small = Image.fromarray(digit).resize((side, side), Image.BOX)
            canvas[top:top + side, left:left + side] = np.asarray(small)
        return out

    return apply


CORRUPTIONS = (
    Corruption("none", lambda x, rng: x),
    *(Corruption(f"rotate {angle:+d} deg", _affine(angle=angle)) for angle in (-10, 10, -20, 20, -30, 30)),
    Corruption("shift 2 px", _affine(shift=(2, 2))),
    Corruption("shift 4 px", _affine(shift=(4, -4))),
    Corruption("scale 0.7", _affine(scale=0.7)),
    Corruption("scale 1.3", _affine(scale=1.3)),
    Corruption("blur (gaussian 1 px)", _filter(ImageFilter.GaussianBlur(1))),
    Corruption("noise (sigma 40)", _noise(40.0)),
    Corruption("noise (sigma 40), preprocessed", _noise(40.0), preprocess=True),
    Corruption("inverted polarity", lambda x, rng: 255 - x),
    Corruption("inverted, preprocessed", lambda x, rng: 255 - x, preprocess=True),
    Corruption("thinner strokes", _filter(ImageFilter.MinFilter(3))),
    Corruption("thicker strokes", _filter(ImageFilter.MaxFilter(3))),
    Corruption("small on a canvas, preprocessed", _on_canvas(0.5, anywhere=False), preprocess=True),
    Corruption("off-centre on a canvas, preprocessed", _on_canvas(1.0, anywhere=True), preprocess=True),
)


def corrupt(data: Labelled, corruption: Corruption, seed: int = 0) -> Labelled:
    """The labelled set under one corruption; preprocessed rows may lose digits ("no digit": wrong)."""
    rng = np.random.default_rng([seed, *corruption.name.encode()])  # its own stream, whatever the order
    images = corruption.apply(data.pixels, rng)
    found = np.ones(len(images), bool)
    if corruption.preprocess:
        framed = [frame(Image.fromarray(a)) for a in images]
        found = np.array([f is not None for f in framed])
        images = np.stack([np.zeros((SIZE, SIZE), np.uint8) if f is None else f for f in framed])
    return Labelled(source=f"{data.source}, {corruption.name}", pixels=images, labels=data.labels, found=found,
                    names=data.names)


def robustness_table(models: list[Model], data: Labelled, seed: int = 0) -> list[dict]:
    """[{"corruption": name, "accuracy": [one per model]}], one row per corruption, "none" first."""
    rows = []
    for corruption in CORRUPTIONS:
        changed = corrupt(data, corruption, seed)
        rows.append({"corruption": corruption.name,
                     "accuracy": [evaluate(m, changed, latency_samples=0).accuracy for m in models]})
    return rows
