"""Framing: the ink of one digit -> 28x28 uint8, white on black, framed exactly like MNIST.

The last stage (load -> ink -> frame): pick the digit among the ink's components, crop it,
scale its longer side to 20 px, soften it like the training digits, centre it by mass.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from edge.errors import UserError
from edge.preprocess.filters import Component, components, label, minmax_filter, otsu_separation, resize, soften
from edge.preprocess.ink import MIN_CONTRAST, MIN_SEPARATION, WORK_SIDE, Ink, find_ink, working_gray
from edge.preprocess.load import to_gray

BOX = 20
"""MNIST fits each digit's longer side to 20 px ..."""
SIZE = 28
"""... and centres it by mass in a 28x28 field."""
MIN_STROKE = 1.6
BBOX_LEVEL = 0.1
"""Ink at this fraction of the strongest counts for the bounding box (fainter is blur or halo)."""
MIN_DIGIT = 0.04
"""A digit spans at least this fraction of the image's longer side; smaller marks are specks."""
DASH = 0.25
"""A mark under this share as tall as it is wide is a dash or an underline: the flattest digits people
write (a 2 or a 0 squashed into a form's box) are over 0.35 (USPS), MNIST's over 0.55."""
BLOB = 0.33
"""A mark whose strokes are this thick for its size (twice the area over the outline, over the longer
side) and that encloses no paper is a dot or a blob: a filled disc gives 0.39 in pixels; digits stay
under 0.27 (USPS tight crops, photos-dev), except marker 0s, 6s and 9s (up to 0.36) with their holes
inked over, which are spared by their size (`DOT`)."""
DOT = 0.2
"""... and under this share of the image's longer side: a marker digit whose loops are filled in is as
thick as a dot, but people photograph a digit larger."""
FINE_SIDE = 400
"""Working size of the second look at a big photo in which nothing credible showed (`_find_digit`)."""
SOFTEN = 0.5
"""Gaussian sigma (px of the 28x28 output) that softens a digit shrunk into the box: the network learnt
from digits warped with bilinear sampling, measurably softer than crisp ink area-averaged from a
drawing or a scan (edge gradient per unit of ink 0.99 in training, 1.03 for framed drawings, 0.94
after softening)."""


class NoDigit(UserError):
    """The image holds no ink worth reading (blank, noise only, or too faint): answer "no digit"."""


def select_digit(found: Ink) -> np.ndarray:
    """Mask of the digit: the heaviest component plus the pieces that belong with it.

    A digit can come in pieces (a 5's flag, a 4 drawn in two strokes, a pen that skipped), so the
    group grows by every piece lying within half a digit of it, unless the piece is a speck (under
    2% of the group's ink) that would stretch the digit's box. Raises NoDigit if nothing credible is
    left: too small, or too faint against the noise.
    """
    h, w = found.mask.shape
    comps = [c for c in components(found.labels, found.contrast) if c.area >= max(3, round(5e-5 * h * w))]
    if not comps:
        raise NoDigit("no digit found: the image is blank or too faint")
    faint = max(MIN_CONTRAST, 3.0 * found.noise)  # mean contrast of stains, shading, noise blobs
    strong = [c for c in comps if c.mass >= faint * c.area]
    if not strong:
        raise NoDigit("no digit found: only faint marks or noise")
    # Ink touching a long stretch of the border is a backdrop (a table beside the paper, a
    # shadow, the sheet's edge), not a digit, if a digit-sized alternative exists. Ink that reaches
    # all four sides is the digit of a tight crop, unless a larger digit lies within (a table all round).
    # So are the pieces of a tight crop (all the ink together spans the frame) no thicker than the
    # other strokes: a 5's flag or a 3's top arc cropped along the border.
    edge = np.concatenate([found.labels[0], found.labels[-1], found.labels[:, 0], found.labels[:, -1]])
    contact = np.bincount(edge, minlength=int(found.labels.max()) + 1)
    border = [c for c in comps if contact[c.label] >= 0.15 * 2 * (h + w)]
    inner = [c.stroke for c in strong if c not in border]
    if inner and _spans(strong, h, w):
        border = [c for c in border if c.stroke >= 2.0 * max(inner)]
    backdrop = {c.label: 0.25 if (c.top, c.left, c.bottom, c.right) == (0, 0, h, w) else 0.1 for c in border}
    if backdrop:
        size = max(backdrop.values()) * max(h, w)
        alternatives = [c for c in strong if c.label not in backdrop and max(c.height, c.width) >= size]
        if alternatives:
            strong = alternatives
            comps = [c for c in comps if c.label not in backdrop]
    # A whole photo of a page shows pieces of the neighbouring digits that the frame cuts off: a
    # digit-sized piece the frame does not cut is preferred (a tight crop's digit spans the frame),
    # and of those the heaviest near the centre, where people aim.
    whole = [c for c in strong if not _cut_off(c, h, w) and max(c.height, c.width) >= 0.1 * max(h, w)]
    main = max(whole or strong, key=lambda c: c.mass * _centrality(c, h, w))
    keep = [main.label]
    top, left, bottom, right, mass = main.top, main.left, main.bottom, main.right, main.mass
    rest = sorted((c for c in comps if c is not main), key=lambda c: -c.mass)
    grew = True
    while grew and rest:
        grew = False
        for c in list(rest):
            inside = c.top >= top and c.left >= left and c.bottom <= bottom and c.right <= right
            if not inside:
                size = max(bottom - top, right - left, c.height, c.width)
                gap = max(c.top - bottom, top - c.bottom, c.left - right, left - c.right, 0)
                if gap > 0.5 * size or c.mass < 0.02 * mass:
                    continue
            keep.append(c.label)
            rest.remove(c)
            top, left, bottom, right = min(top, c.top), min(left, c.left), max(bottom, c.bottom), max(right, c.right)
            mass += c.mass
            grew = True
    if max(bottom - top, right - left) < max(6, MIN_DIGIT * max(h, w)):
        raise NoDigit("no digit found: only specks")
    pad = max(2, max(bottom - top, right - left) // 4)
    region = found.contrast[max(top - pad, 0):bottom + pad, max(left - pad, 0):right + pad]
    separation = otsu_separation(region)
    group = [c for c in comps if c.label in set(keep)]
    group_area = sum(c.area for c in group)
    snr = mass / group_area / max(found.noise, 1e-6)
    # Ink is two clean levels, or at least far above the noise; blotches and noise are neither.
    if separation < 0.72 or (separation < MIN_SEPARATION and snr < 8.0):
        raise NoDigit("no digit found: only shading or noise, nothing that stands apart like ink")
    # Shapes no digit has, before the model (which would read them as digits, often confidently).
    height, width = bottom - top, right - left
    if height < DASH * width:
        raise NoDigit("no digit found: a dash, not a digit")
    lut = np.zeros(int(found.labels.max()) + 1, bool)
    lut[keep] = True
    digit = lut[found.labels]
    thick = 2.0 * group_area / max(sum(c.perimeter for c in group), 1) >= BLOB * max(height, width)
    if thick and max(height, width) < DOT * max(h, w) and not _has_hole(digit[top:bottom, left:right]):
        raise NoDigit("no digit found: a dot, not a digit")
    return digit


def _has_hole(ink: np.ndarray) -> bool:
    """Does the ink enclose paper (a region of it that does not reach the box's edge)?"""
    h, w = ink.shape
    return any(c.top > 0 and c.left > 0 and c.bottom < h and c.right < w for c in components(label(~ink)[0]))


def _spans(comps: list[Component], h: int, w: int) -> bool:
    """Do these components together reach all four sides of an h x w frame?"""
    return (min(c.top for c in comps), min(c.left for c in comps), max(c.bottom for c in comps),
            max(c.right for c in comps)) == (0, 0, h, w)


def _cut_off(c: Component, h: int, w: int) -> bool:
    """Does the frame cut this component off: it touches the border without spanning the image?"""
    touches = c.top == 0 or c.left == 0 or c.bottom == h or c.right == w
    return touches and c.height < 0.9 * h and c.width < 0.9 * w


def _centrality(c: Component, h: int, w: int) -> float:
    """1 at the image's centre, 1/5 at the middle of an edge, 1/9 in a corner."""
    dy = (c.top + c.bottom) / 2 / h - 0.5
    dx = (c.left + c.right) / 2 / w - 0.5
    return 1.0 / (1.0 + 16.0 * (dy * dy + dx * dx))


def frame_digit(ink: np.ndarray) -> np.ndarray:
    """A crop of soft ink (ink bright; float 0..1 or uint8) -> 28x28 uint8 framed like MNIST.

    The ink's bounding box is scaled so its longer side is 20 px (area-averaging, which makes
    MNIST's grey anti-aliased edges), then centred (`centre`).
    """
    a = np.asarray(ink, dtype=np.float32)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"frame_digit wants a 2-D ink array, got shape {a.shape}")
    if np.issubdtype(np.asarray(ink).dtype, np.integer):
        a = a / 255.0
    peak = float(a.max())
    if not peak > 0:
        raise NoDigit("no digit found: no ink in the crop")
    rows = np.nonzero((a >= BBOX_LEVEL * peak).any(axis=1))[0]
    cols = np.nonzero((a >= BBOX_LEVEL * peak).any(axis=0))[0]
    crop = a[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    s = BOX / max(h, w)
    if MIN_STROKE > 0 and s < 1:
        core = crop >= 0.5 * peak
        edges = int((core[1:] != core[:-1]).sum() + (core[:, 1:] != core[:, :-1]).sum()) + int(core[0].sum() + core[-1].sum() + core[:, 0].sum() + core[:, -1].sum())
        width = 2.0 * int(core.sum()) / max(edges, 1)
        if width * s < MIN_STROKE:
            k = int(round(MIN_STROKE / s - width)) + 1
            k += 1 - k % 2
            if k >= 3:
                crop = minmax_filter(np.pad(crop, k // 2), k, np.maximum)
                h, w = crop.shape
                s = BOX / max(h, w)
    size = (max(1, min(BOX, round(w * s))), max(1, min(BOX, round(h * s))))
    resample = Image.BOX if s < 1 else Image.BILINEAR
    small = np.clip(resize(crop, size, resample), 0.0, None)
    top_val = float(small.max())
    if not top_val > 0:
        raise NoDigit("no digit found: no ink in the crop")
    small = np.clip(small / max(top_val, 1e-6) if top_val < 1 else small, 0.0, 1.0)
    if SOFTEN > 0 and s < 1:  # enlarging (bilinear) softens already
        small = soften(small, SOFTEN)
    return centre(small)


def centre(small: np.ndarray) -> np.ndarray:
    """Ink (float 0..1) that fits the 28x28 canvas -> 28x28 uint8 with its centre of mass on pixel
    (14, 14), to the nearest pixel, as MNIST's own centring did."""
    sh, sw = small.shape
    mass = small.sum()
    cy = float((small.sum(axis=1) * np.arange(sh)).sum() / mass)
    cx = float((small.sum(axis=0) * np.arange(sw)).sum() / mass)
    top = min(max(int(round(14 - cy)), 0), SIZE - sh)
    left = min(max(int(round(14 - cx)), 0), SIZE - sw)
    out = np.zeros((SIZE, SIZE), np.float32)
    out[top:top + sh, left:left + sw] = small
    return np.round(out * 255.0).astype(np.uint8)


def is_mnist_framed(a: np.ndarray) -> bool:
    """Is this 28x28 uint8 array already an MNIST image (white ink on black, 20 px box, centred)?"""
    if a.shape != (SIZE, SIZE):
        return False
    nz = a > 0
    if not nz.any():
        return False
    if nz.mean() > 0.5:  # the background, black, is most of the image
        return False
    rows = np.nonzero(nz.any(axis=1))[0]
    cols = np.nonzero(nz.any(axis=0))[0]
    if max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 not in (19, 20, 21):
        return False
    f = a.astype(np.float64)
    m = f.sum()
    cy = (f.sum(axis=1) * np.arange(SIZE)).sum() / m
    cx = (f.sum(axis=0) * np.arange(SIZE)).sum() / m
    return abs(cy - 14) <= 0.75 and abs(cx - 14) <= 0.75


def to_mnist(image: Image.Image) -> np.ndarray:
    """One digit in any photo, scan or drawing -> (28, 28) uint8, white ink on black, MNIST framing.

    An image that is already MNIST-framed (28x28, either polarity) comes back exactly as it is
    (inverted if black on white): re-framing an MNIST digit can only blur it. Raises NoDigit when
    there is no credible ink (blank, noise only, too faint).
    """
    if image.size == (SIZE, SIZE) and "A" not in image.mode and image.mode != "P":
        a = np.round(to_gray(image)).astype(np.uint8)
        if is_mnist_framed(a):
            return a.copy()
        if is_mnist_framed(255 - a):
            return 255 - a
    found, digit = _find_digit(image)
    rows = np.nonzero(digit.any(axis=1))[0]
    cols = np.nonzero(digit.any(axis=0))[0]
    t, b = max(rows[0] - 1, 0), rows[-1] + 2
    l, r = max(cols[0] - 1, 0), cols[-1] + 2
    near = minmax_filter(digit[t:b, l:r].astype(np.uint8), 3, np.maximum) > 0  # keep anti-aliased rims
    return frame_digit(np.where(near, found.ink[t:b, l:r], 0.0))


def _find_digit(image: Image.Image) -> tuple[Ink, np.ndarray]:
    """The ink at working size and the digit's mask in it; a big photo gets a second, finer look.

    A thin pen line in a whole photo of a page fades to a fraction of a pixel at WORK_SIDE, below
    what counts as ink: when nothing credible shows there in an image of 2 * FINE_SIDE px or more,
    the same image is read again at FINE_SIDE.
    """
    found = find_ink(working_gray(image, WORK_SIDE))
    try:
        return found, select_digit(found)
    except NoDigit:
        if max(image.size) < 2 * FINE_SIDE:
            raise
    found = find_ink(working_gray(image, FINE_SIDE))
    return found, select_digit(found)
