"""Split a photo of a written number into its digits, in reading order.

Connected components of the ink mask are the first guess at digits. Pieces that sit above one
another in the same column are one digit with a broken stroke (a 5's flag, a pen that skipped);
a blob much wider than a digit is two or more touching digits, cut where the ink's column profile
shows a clear gap. Digits are grouped into lines by vertical overlap, lines read top to bottom,
digits left to right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from edge.preprocess import Box, NoDigit, components, frame_digit, ink_mask, label

WORK_SIDE = 512  # a number needs more pixels than one digit: each digit still gets 50+ px
MAX_ASPECT = 1.25  # width / height above which a blob is taken for touching digits
DIGIT_ASPECT = 0.7  # typical width / height of one handwritten digit, to guess how many touch


@dataclass
class FoundDigit:
    pixels: np.ndarray  # 28x28 uint8, MNIST-framed
    box: tuple[int, int, int, int]  # x, y, w, h in the original image's pixels
    line: int  # 0 for the first line of text, 1 for the next, ...


@dataclass
class _Blob(Box):
    top: int
    left: int
    bottom: int
    right: int
    labels: set[int]

    def absorb(self, other: "_Blob") -> None:
        self.top, self.left = min(self.top, other.top), min(self.left, other.left)
        self.bottom, self.right = max(self.bottom, other.bottom), max(self.right, other.right)
        self.labels |= other.labels


def find_digits(image: Image.Image) -> list[FoundDigit]:
    """Every digit in the image, framed like MNIST, in reading order; [] when there is no ink."""
    try:
        ink, mask = ink_mask(image, WORK_SIDE)
    except NoDigit:
        return []
    labels, count = label(mask)
    comps = components(labels, ink)
    if not comps:
        return []
    tallest = max(c.height for c in comps)
    # Specks: tiny next to the tallest stroke. Dots and short flags survive to be joined below.
    blobs = [_Blob(c.top, c.left, c.bottom, c.right, {c.label}) for c in comps
             if max(c.height, c.width) >= 0.15 * tallest and c.area >= 4]
    blobs = _join_broken_strokes(blobs)
    # Pieces that remain much smaller than the digits around them are noise, not digits.
    typical = float(np.median([b.height for b in blobs])) if blobs else 0
    blobs = [b for b in blobs if b.height >= 0.4 * typical]
    scale_x, scale_y = image.width / ink.shape[1], image.height / ink.shape[0]
    found = []
    for line, row in enumerate(_lines(blobs)):
        for blob in sorted(row, key=lambda b: b.left):
            blob_ink = _blob_ink(blob, labels, ink)
            for left, right in _split_touching(blob, blob_ink):
                try:
                    pixels = frame_digit(blob_ink[:, left - blob.left:right - blob.left])
                except NoDigit:
                    continue
                box = (round(left * scale_x), round(blob.top * scale_y), round((right - left) * scale_x),
                       round(blob.height * scale_y))
                found.append(FoundDigit(pixels, box, line))
    return found


def _join_broken_strokes(blobs: list[_Blob]) -> list[_Blob]:
    """Merge blobs whose columns overlap mostly and whose rows nearly touch: one broken digit."""
    merged = True
    while merged:
        merged = False
        for a in blobs:
            for b in blobs:
                if a is b:
                    continue
                overlap = min(a.right, b.right) - max(a.left, b.left)
                gap = max(a.top, b.top) - min(a.bottom, b.bottom)
                height = max(a.height, b.height)
                if overlap >= 0.5 * min(a.width, b.width) and gap <= 0.3 * height:
                    a.absorb(b)
                    blobs.remove(b)
                    merged = True
                    break
            if merged:
                break
    return blobs


def _blob_ink(blob: _Blob, labels: np.ndarray, ink: np.ndarray) -> np.ndarray:
    window = labels[blob.top:blob.bottom, blob.left:blob.right]
    return np.where(np.isin(window, list(blob.labels)), ink[blob.top:blob.bottom, blob.left:blob.right], 0.0)


def _split_touching(blob: _Blob, blob_ink: np.ndarray) -> list[tuple[int, int]]:
    """Column ranges of the digits in a blob: itself, or cuts at clear valleys of the ink profile."""
    if blob.width <= MAX_ASPECT * blob.height:
        return [(blob.left, blob.right)]
    count = max(2, round(blob.width / (DIGIT_ASPECT * blob.height)))
    profile = blob_ink.sum(axis=0)
    cuts = []
    for k in range(1, count):
        centre = round(k * blob.width / count)
        half = max(1, round(0.25 * blob.width / count))
        lo, hi = max(1, centre - half), min(blob.width - 1, centre + half)
        if hi <= lo:
            continue
        col = lo + int(np.argmin(profile[lo:hi]))
        if profile[col] <= 0.35 * np.median(profile[profile > 0]):  # a clear gap: few ink pixels
            cuts.append(col)
    edges = [0, *cuts, blob.width]
    return [(blob.left + a, blob.left + b) for a, b in zip(edges, edges[1:]) if b - a >= 2]


def _lines(blobs: list[_Blob]) -> list[list[_Blob]]:
    """Group blobs into text lines: a blob joins a line when it overlaps the line's rows by half."""
    lines: list[list[_Blob]] = []
    for blob in sorted(blobs, key=lambda b: (b.top + b.bottom) / 2):
        for line in lines:
            top, bottom = min(b.top for b in line), max(b.bottom for b in line)
            if min(bottom, blob.bottom) - max(top, blob.top) >= 0.5 * min(blob.height, bottom - top):
                line.append(blob)
                break
        else:
            lines.append([blob])
    return lines
