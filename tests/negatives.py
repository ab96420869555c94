"""Shapes that are not digits, as phone photos of ink on paper (bench/not_digits.py's development set).

Families are kept apart, so a future "not a digit" output can be trained on some and measured on the
others: dots, dashes, specks, letters (DejaVu faces if installed, else Pillow's own font), symbols
(#, %, &, @, *, + in those faces; a heart and a smiley drawn), scribbles, and parts of digits (half of
an MNIST *training* digit: never the test split). Each shape is drawn white on black (ink bright) on a
200x200 canvas, then photographed: dark pen on grey paper, noise, a little blur, JPEG.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FAMILIES = ("dot", "dash", "speck", "letter", "symbol", "scribble", "digit_part")
SIDE = 200
LETTERS = "ACEFHKMNPRTUVWXYaefhkmnprtwxy"
SYMBOLS = "#%&@*+"
FACES = ("DejaVuSans.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Oblique.ttf")
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")


def _fonts(size: int) -> list[ImageFont.FreeTypeFont | ImageFont.ImageFont]:
    faces = [FONT_DIR / f for f in FACES if (FONT_DIR / f).is_file()]
    if faces:
        return [ImageFont.truetype(str(f), size) for f in faces]
    return [ImageFont.load_default(size)]


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("L", (SIDE, SIDE))
    return image, ImageDraw.Draw(image)


def _text(text: str, rng: np.random.Generator) -> Image.Image:
    image, pen = _canvas()
    fonts = _fonts(int(rng.integers(100, 140)))
    pen.text((SIDE / 2, SIDE / 2), text, fill=255, font=fonts[int(rng.integers(len(fonts)))], anchor="mm")
    return image.rotate(float(rng.uniform(-10, 10)), resample=Image.BILINEAR)


def _heart(pen: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    t = np.linspace(0, 2 * np.pi, 80)
    x, y = 16 * np.sin(t) ** 3, 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    s = rng.uniform(3.5, 5.0)
    pen.line([(100 + s * a, 95 - s * b) for a, b in zip(x, y)], fill=255, width=int(rng.integers(5, 10)), joint="curve")


def _smiley(pen: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    r, w = rng.uniform(55, 80), int(rng.integers(5, 10))
    pen.ellipse([100 - r, 100 - r, 100 + r, 100 + r], outline=255, width=w)
    for dx in (-0.35, 0.35):
        pen.ellipse([100 + dx * r - 6, 100 - 0.3 * r - 6, 100 + dx * r + 6, 100 - 0.3 * r + 6], fill=255)
    pen.arc([100 - 0.5 * r, 100 - 0.3 * r, 100 + 0.5 * r, 100 + 0.5 * r], 20, 160, fill=255, width=w)


def shape(family: str, rng: np.random.Generator, digits: np.ndarray | None = None) -> Image.Image:
    """One shape of `family`, white on black on a 200x200 canvas (`digit_part` needs MNIST training `digits`)."""
    image, pen = _canvas()
    if family == "dot":
        r, aspect = rng.uniform(6, 18), rng.uniform(0.8, 1.25)
        cx, cy = rng.uniform(70, 130, 2)
        pen.ellipse([cx - r, cy - r * aspect, cx + r, cy + r * aspect], fill=255)
    elif family == "dash":
        length, angle = rng.uniform(40, 120), np.radians(rng.uniform(-12, 12))
        dx, dy = 0.5 * length * np.cos(angle), 0.5 * length * np.sin(angle)
        pen.line([(100 - dx, 100 - dy), (100 + dx, 100 + dy)], fill=255, width=int(rng.integers(4, 11)))
    elif family == "speck":
        for _ in range(int(rng.integers(1, 4))):
            x, y, r = *rng.uniform(40, 160, 2), rng.uniform(1, 3.5)
            pen.ellipse([x - r, y - r, x + r, y + r], fill=255)
    elif family == "letter":
        return _text(LETTERS[int(rng.integers(len(LETTERS)))], rng)
    elif family == "symbol":
        pick = int(rng.integers(len(SYMBOLS) + 2))
        if pick < len(SYMBOLS):
            return _text(SYMBOLS[pick], rng)
        (_heart if pick == len(SYMBOLS) else _smiley)(pen, rng)
    elif family == "scribble":
        for _ in range(int(rng.integers(1, 4))):
            points = [tuple(rng.uniform(30, 170, 2)) for _ in range(int(rng.integers(3, 7)))]
            pen.line(points, fill=255, width=int(rng.integers(4, 10)), joint="curve")
    elif family == "digit_part":
        digit = digits[int(rng.integers(len(digits)))]
        half = [slice(0, 14), slice(14, 28)][int(rng.integers(2))]
        part = digit.copy()
        if rng.random() < 0.5:
            part[half] = 0
        else:
            part[:, half] = 0
        return Image.fromarray(part).resize((SIDE, SIDE), Image.BICUBIC)
    else:
        raise ValueError(f"unknown family {family!r}")
    return image


def photograph(ink: Image.Image, rng: np.random.Generator) -> bytes:
    """A 400x320 JPEG photo of the canvas's ink drawn in dark pen on grey paper."""
    cover = np.zeros((320, 400), np.float32)
    top, left = int(rng.integers(20, 100)), int(rng.integers(40, 160))
    cover[top:top + SIDE, left:left + SIDE] = np.asarray(ink, np.float32) / 255
    paper = rng.uniform(170, 225)
    gray = paper * (1 - cover) + 40 * cover + rng.normal(0, 3, cover.shape)
    image = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.2)))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return buf.getvalue()
