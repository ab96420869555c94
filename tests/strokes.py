"""Digits as a person draws them on the phone page's pad: ordinary ones, and a continental hand.

Strokes are lists of (x, y) points, fractions of the pad's side. The continental 1 (a long up-stroke
and a foot) and 7 (a crossbar low on its stem) are styles MNIST has little of: the small test model
reads them as other digits until it is taught them.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

Strokes = list[list[tuple[float, float]]]


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float, n: int = 16) -> list[tuple[float, float]]:
    """Points on an ellipse from angle `start` to `end` (radians; y grows downwards)."""
    return [(cx + rx * math.cos(start + (end - start) * i / n), cy + ry * math.sin(start + (end - start) * i / n))
            for i in range(n + 1)]


ORDINARY: dict[int, Strokes] = {
    0: [arc(0.5, 0.5, 0.2, 0.3, -math.pi / 2, 1.5 * math.pi, 24)],
    1: [[(0.5, 0.2), (0.48, 0.8)]],
    2: [arc(0.5, 0.35, 0.18, 0.15, math.pi * 1.1, math.pi * 2.25, 12) + [(0.32, 0.8), (0.7, 0.8)]],
    3: [arc(0.48, 0.35, 0.17, 0.14, -math.pi * 0.9, math.pi * 0.5, 12)
        + arc(0.48, 0.64, 0.19, 0.16, -math.pi * 0.5, math.pi * 0.9, 12)],
    4: [[(0.45, 0.2), (0.3, 0.6), (0.7, 0.6)], [(0.6, 0.35), (0.6, 0.85)]],
    5: [[(0.65, 0.2), (0.38, 0.2), (0.35, 0.45)] + arc(0.5, 0.62, 0.18, 0.18, -math.pi * 0.75, math.pi * 0.85, 12)],
    6: [arc(0.55, 0.45, 0.2, 0.3, -math.pi * 0.35, -math.pi, 8) + arc(0.5, 0.65, 0.16, 0.15, math.pi, 3 * math.pi)],
    7: [[(0.3, 0.22), (0.7, 0.22)], [(0.7, 0.22), (0.45, 0.82)]],
    8: [arc(0.5, 0.33, 0.14, 0.13, math.pi / 2, 2.5 * math.pi), arc(0.5, 0.64, 0.17, 0.17, -math.pi / 2, 1.5 * math.pi)],
    9: [arc(0.5, 0.35, 0.16, 0.14, 0, 2 * math.pi), [(0.66, 0.35), (0.62, 0.82)]],
}

CONTINENTAL: dict[int, Strokes] = {
    **ORDINARY,
    1: [[(0.28, 0.45), (0.56, 0.15), (0.53, 0.85)], [(0.36, 0.85), (0.7, 0.85)]],
    7: [[(0.3, 0.22), (0.7, 0.22)], [(0.7, 0.22), (0.45, 0.82)], [(0.38, 0.58), (0.72, 0.58)]],
}


def jittered(strokes: Strokes, rng: np.random.Generator) -> Strokes:
    """The same digit drawn again: a little larger or smaller, wider or narrower, moved, slanted."""
    sx, sy = rng.uniform(0.85, 1.1, 2)
    dx, dy = rng.uniform(-0.05, 0.05, 2)
    slant = rng.uniform(-0.12, 0.12)
    return [[(0.5 + (x - 0.5) * sx + slant * (y - 0.5) + dx, 0.5 + (y - 0.5) * sy + dy) for x, y in stroke]
            for stroke in strokes]


def render(strokes: Strokes, side: int = 210, width: float = 1 / 14) -> Image.Image:
    """The strokes as the pad draws them (white on black, round ends), drawn 4x larger and box-shrunk."""
    big, pen = 4 * side, 4 * side * width
    image = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        points = [(x * big, y * big) for x, y in stroke]
        draw.line(points, fill=255, width=round(pen), joint="curve")
        for x, y in points:
            draw.ellipse([x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2], fill=255)
    return image.resize((side, side), Image.BOX)
