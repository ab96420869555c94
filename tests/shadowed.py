"""Rendered phone photos of a digit on paper, with and without a soft shadow (bench/shadows.py's set).

MNIST digits drawn as dark ink about 200 px tall on a 1500x1200 photo of paper (tint, texture, a
gentle light gradient, noise, a little blur, JPEG), each rendered twice: as it is, and with a soft
shadow darkening part of the page to 55-70%. Three families: `corner` (a diagonal edge cuts off a
corner), `side` (a near-straight edge across the page from one side) and `edge` (the shadow's edge
runs through the digit itself).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

WIDTH, HEIGHT = 1500, 1200
KINDS = ("corner", "side", "edge")


def _digit_ink(digit: np.ndarray, height: int) -> np.ndarray:
    """An MNIST digit scaled to `height` px, as pen ink 0..1 (soft edges kept)."""
    ys, xs = np.nonzero(digit)
    crop = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    scale = height / crop.shape[0]
    big = Image.fromarray(crop).resize((max(1, round(crop.shape[1] * scale)), height), Image.BICUBIC)
    return np.clip((np.asarray(big, np.float32) - 100.0) / 60.0, 0.0, 1.0)


def _shadow(kind: str, rng: np.random.Generator, centre: tuple[int, int], size: int) -> np.ndarray:
    """Multiplicative light, 1 in the open and `depth` (0.55-0.7) in the shadow, with a soft edge."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    depth = rng.uniform(0.55, 0.7)
    soft = rng.uniform(8.0, 60.0)  # px: a hand near the page casts a sharper edge than a lamp
    angle = rng.uniform(0, 2 * np.pi)
    if kind == "corner":  # a diagonal edge cutting a corner
        cy, cx = rng.choice([0, HEIGHT]), rng.choice([0, WIDTH])
        normal = np.array([np.sign(HEIGHT / 2 - cy), np.sign(WIDTH / 2 - cx)], np.float32) / np.sqrt(2)
        normal += rng.normal(0, 0.2, 2).astype(np.float32)
        reach = rng.uniform(0.3, 0.55) * (HEIGHT + WIDTH) / 2
        inside = reach - ((yy - cy) * normal[0] + (xx - cx) * normal[1]) / np.linalg.norm(normal)
    elif kind == "side":  # a near-straight edge across the page, from one side
        side = int(rng.integers(4))
        tilt = rng.uniform(-0.25, 0.25)
        share = rng.uniform(0.2, 0.45)
        if side < 2:
            line = HEIGHT * share + tilt * (xx - WIDTH / 2)
            inside = (line - yy) if side == 0 else (yy - (HEIGHT - line))
        else:
            line = WIDTH * share + tilt * (yy - HEIGHT / 2)
            inside = (line - xx) if side == 2 else (xx - (WIDTH - line))
    else:  # the shadow's edge runs through the digit
        offset = rng.uniform(-0.3, 0.3) * size
        inside = (yy - centre[0]) * np.sin(angle) + (xx - centre[1]) * np.cos(angle) - offset
    return (1.0 - (1.0 - depth) * 0.5 * (1.0 + np.tanh(inside / (2.0 * soft)))).astype(np.float32)  # a logistic step


def render(digit: np.ndarray, kind: str, seed: int) -> tuple[bytes, bytes]:
    """JPEG bytes of the same photo of `digit` without and with a `kind` shadow."""
    rng = np.random.default_rng(seed)
    height = int(rng.integers(170, 240))
    ink = _digit_ink(digit, height)
    h, w = ink.shape
    top = int(HEIGHT / 2 + rng.uniform(-0.2, 0.2) * HEIGHT - h / 2)
    left = int(WIDTH / 2 + rng.uniform(-0.2, 0.2) * WIDTH - w / 2)
    cover = np.zeros((HEIGHT, WIDTH), np.float32)
    cover[top:top + h, left:left + w] = ink
    texture = np.asarray(Image.fromarray(rng.normal(0, 1, (HEIGHT // 24 + 2, WIDTH // 24 + 2)).astype(np.float32), "F")
                         .resize((WIDTH, HEIGHT), Image.BICUBIC))
    paper = rng.uniform(190, 230) * np.array([1.0, rng.uniform(0.97, 1.0), rng.uniform(0.88, 0.97)], np.float32)
    paper = paper * (1 + 0.015 * texture[..., None])
    pen = np.array([30.0, 32.0, rng.uniform(40, 90)], np.float32)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    gx, gy = rng.uniform(-0.12, 0.12, 2)
    light = 1.0 + gx * (xx / WIDTH - 0.5) + gy * (yy / HEIGHT - 0.5)
    rgb = paper * (1 - cover[..., None]) + pen * cover[..., None]
    noise = rng.normal(0, 3.0, rgb.shape).astype(np.float32)
    blur = float(rng.uniform(0.6, 1.8))
    shadow = _shadow(kind, rng, (top + h // 2, left + w // 2), height)
    return tuple(_jpeg(rgb * (light * s)[..., None] + noise, blur) for s in (np.float32(1.0), shadow))


def _jpeg(rgb: np.ndarray, blur: float) -> bytes:
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB").filter(ImageFilter.GaussianBlur(blur))
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=85)
    return buf.getvalue()
