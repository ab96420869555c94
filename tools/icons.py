"""Draw the page's app icons (web/icons/): a handwritten 7 as the model sees it, 28x28 pixels, enlarged.

    python tools/icons.py

Reproducible: the same pixels on every run (tests/test_site.py checks the committed files against them).
`any` icons fill the square; the maskable one keeps the digit inside the central circle (radius 40% of
the side) that every launcher's mask leaves visible.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ICONS = Path(__file__).resolve().parents[1] / "web" / "icons"
BACKGROUND = (17, 17, 17)  # the page's background, #111
INK = (76, 175, 80)  # the page's bar green, #4caf50
SIZES = {"icon-192.png": (192, 1.0), "icon-512.png": (512, 1.0), "icon-maskable-512.png": (512, 0.6)}
"""File name: (side in pixels, share of the side the 28x28 digit covers)."""


def digit() -> np.ndarray:
    """A 7 drawn with a 2.5-pixel pen on a 28x28 canvas (a gray level per pixel, MNIST's framing)."""
    big = Image.new("L", (280, 280), 0)
    pen = ImageDraw.Draw(big)
    pen.line([(70, 60), (210, 60), (120, 230)], fill=255, width=28, joint="curve")
    pen.line([(105, 145), (185, 145)], fill=255, width=24)
    return np.asarray(big.resize((28, 28), Image.BOX))


def icon(side: int, share: float) -> Image.Image:
    """The digit's pixels as squares (a picture is a matrix), centred on the page's background."""
    cells = digit().astype(np.float32)[..., None] / 255
    colours = (np.array(BACKGROUND) * (1 - cells) + np.array(INK) * cells).round().astype(np.uint8)
    size = round(side * share)
    pixels = Image.fromarray(colours, "RGB").resize((size, size), Image.NEAREST)
    image = Image.new("RGB", (side, side), BACKGROUND)
    image.paste(pixels, ((side - size) // 2, (side - size) // 2))
    return image


def main() -> None:
    ICONS.mkdir(exist_ok=True)
    for name, (side, share) in SIZES.items():
        icon(side, share).save(ICONS / name, optimize=True)
        print(f"wrote {ICONS / name}", file=sys.stderr)


if __name__ == "__main__":
    main()
