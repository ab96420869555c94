"""Ink: a gray working image -> which pixels are ink (bright), after paper, light and rules are removed.

The second stage (load -> ink -> frame): polarity, the paper's surface and background, the noise
floor, a hysteresis threshold, ruled lines removed, connected components.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from edge.preprocess.filters import (box_blur, components, fit, label, median, median_filter, minmax_filter, otsu_split,
                                     otsu_threshold, quadratic_basis, quantiles, resize, run_lengths, subsample)
from edge.preprocess.load import to_gray

WORK_SIDE = 200
"""Longest working image side: a digit a third of the frame tall still gets 40-80 px."""
MIN_WORK_SIDE = 64
"""Smaller inputs (16x16 scans, icons) are upscaled first so thresholds and centring stay smooth."""
MIN_CONTRAST = 16.0
"""Ink must differ from the paper by this many gray levels (of 255) at least, or there is no digit."""
MIN_SNR = 5.0
"""... and by this many times the noise level of the background."""
MIN_SEPARATION = 0.8
"""Around a digit, ink and paper must explain this share of the contrast's variance (`otsu_separation`)."""
LOCAL_PAPER = 7
"""Window (px of the polarity sample, ~100 px long) of the paper's local level under a shadow."""
COARSE = 24
"""Longest side (px) at which the background's wide median is taken: a window half the image wide costs
its square per pixel, and a shadow's edge needs no more."""
NOISY = 4.0
"""Background noise (gray levels) above which the image is smoothed 3x3 before thresholding."""


def _paper_surface(small: np.ndarray, paper: np.ndarray | None = None) -> np.ndarray:
    """The paper's gray level as a smooth surface (lighting gradient, vignetting), either polarity.

    A quadratic fitted to the paper pixels (by default those near the median), refitted as
    outliers (ink, of either sign) are trimmed. A constant is returned unless the surface fits the
    paper clearly better, so a bold digit filling a crop is never mistaken for lighting.
    """
    h, w = small.shape
    full_basis = basis = quadratic_basis(h, w)
    if h >= 16 and w >= 16:  # fit on every other pixel: a quadratic needs few points
        small = small[::2, ::2]
        paper = None if paper is None else paper[::2, ::2]
        basis = full_basis.reshape(h, w, -1)[::2, ::2].reshape(-1, full_basis.shape[1])
    values = small.ravel()
    if paper is None:
        flat = median(values)
        res = values - flat
        paper = np.abs(res) <= max(2.5 * 1.4826 * median(np.abs(res)), 2.0)
    else:
        paper = paper.ravel()
        flat = median(values[paper]) if paper.any() else median(values)
        res = values - flat
    fitted = None
    for _ in range(2):
        if paper.sum() < basis.shape[1] * 4:
            break
        a = basis[paper].astype(np.float64)  # normal equations in float64, as web/preprocess solves them
        try:
            coef = np.linalg.solve(a.T @ a, a.T @ values[paper].astype(np.float64))
        except np.linalg.LinAlgError:
            break
        fitted = (basis @ coef).astype(np.float32)
        res = values - fitted
        paper = np.abs(res) <= max(2.5 * 1.4826 * median(np.abs(res[paper])), 2.0)
    flat = median(values[paper]) if paper.any() else flat
    if fitted is not None and paper.any():
        spread_fit = median(np.abs(res[paper]))
        spread_flat = median(np.abs(values[paper] - flat))
        if spread_fit < 0.8 * spread_flat:
            return (full_basis @ coef).reshape(h, w).astype(np.float32)
    return np.full((h, w), flat, np.float32)


def ink_is_dark(gray: np.ndarray) -> bool:
    """Polarity: is the ink darker than its background?

    Ink is the heavy tail: far more contrast lies beyond the paper's spread on the ink's side than
    on the other. It is measured first against the paper's local level (a median over a few strokes'
    width, which keeps a shadow's edge where it is), so the lit part of a page mostly in shadow is
    not taken for bright ink, if thin strokes stand out against it; else against the median (even
    light, however bold the strokes), where a tail over a fifth of the image may still be bold ink. When there are
    no tails, because the image is two clean levels of similar share (a tight crop of a bold digit),
    the paper is the level that shows through holes in the other (a 0's inside, an 8's loops) as
    well as at the border; failing that, the level that owns most of the border, which ink reaches
    only where strokes touch it. Else the tails are measured against the local mean (a window a
    twelfth of the image, which lighting gradients follow but thin strokes barely move). If nothing
    is clear, the background is whatever owns the border; a last tie goes to the skew.
    """
    g = np.asarray(gray, dtype=np.float32)
    sample = subsample(g)
    h, w = sample.shape
    local = _heavy_tail(sample - median_filter(sample, LOCAL_PAPER), 0.2)
    if local is not None:
        return local
    centred = sample - np.float32(median(sample))
    dark = _heavy_tail(centred, 0.2)
    if dark is None:
        dark = _heavy_tail(centred, 0.5)  # a broad tail: bold ink, or the lit part of a page half in shadow
    if dark is not None:
        return dark
    threshold, separation = otsu_split(sample)
    bright = sample >= threshold
    if separation >= MIN_SEPARATION and 0.1 <= bright.mean() <= 0.9:
        holed = [_has_holes(m) for m in (~bright, bright)]
        if holed[0] != holed[1]:
            return holed[1]
        owned = np.concatenate([bright[0], bright[-1], bright[1:-1, 0], bright[1:-1, -1]]).mean()
        if abs(owned - 0.5) > 0.1:
            return bool(owned > 0.5)
    coarse = resize(g, fit(g.shape, 12), Image.BOX) if max(g.shape) > 12 else g
    dark = _heavy_tail(sample - resize(coarse, (w, h), Image.BILINEAR), 0.2)
    if dark is not None:
        return dark
    b = max(1, round(min(h, w) / 16))
    bmed = median(np.concatenate([sample[:b].ravel(), sample[-b:].ravel(), sample[:, :b].ravel(), sample[:, -b:].ravel()]))
    p1, med, p99 = quantiles(sample, (0.01, 0.5, 0.99))
    dark_gap, bright_gap = bmed - p1, p99 - bmed
    if abs(dark_gap - bright_gap) > 0.25 * max(dark_gap, bright_gap, 1e-6):
        return bool(dark_gap > bright_gap)
    centred = sample - np.float32(med)
    return bool((centred * centred * centred).mean() < 0)


def _has_holes(level: np.ndarray) -> bool:
    """Could this level be paper seen through holes: does it reach the border, and also lie in a
    region (over 1% of the image) that does not?"""
    h, w = level.shape
    if not (level[0].any() or level[-1].any() or level[:, 0].any() or level[:, -1].any()):
        return False
    labels, _ = label(level)
    return any(c.area >= 0.01 * h * w and c.top > 0 and c.left > 0 and c.bottom < h and c.right < w
               for c in components(labels))


def _heavy_tail(r: np.ndarray, cap: float) -> bool | None:
    """Is the ink dark, judged by which tail of `r` (gray minus a reference) is heavy? None if neither
    tail clearly outweighs the other, or the heavy one covers `cap` of the image or more."""
    beyond = 4.0 * 1.4826 * median(np.abs(r)) + 4.0  # the paper's spread: ink is under half
    dark = np.maximum(-r - beyond, 0.0)
    bright = np.maximum(r - beyond, 0.0)
    dark_tail, bright_tail = float(dark.sum()), float(bright.sum())
    heavy = np.count_nonzero(dark if dark_tail > bright_tail else bright)
    if max(dark_tail, bright_tail) > 3.0 * min(dark_tail, bright_tail) and 0 < heavy < cap * r.size:
        return dark_tail > bright_tail
    return None


def _background(g: np.ndarray, small: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """The paper (or screen) alone, ink bright: subtract it and only ink is left.

    Worked out at ~48 px (`small`, with the paper `surface` fitted there). When strokes are thin
    next to the image, a morphological opening with a window over 3x the stroke width (at least
    a quarter of the image) follows shadows and creases but cannot follow strokes; it is floored
    by the surface, which knows vignetted corners the window is too wide for. When strokes are
    thin, a median over half the image (mirrored at the border, that strokes cover too little of to move) takes over
    where it is well above the opening in regions that come in from the border, as shadows do:
    it keeps the narrow wedge of shadow an edge cuts off at the border, that the opening's window
    is too wide for, while a digit's crowded middle, which a median can eat, lies inside. When strokes are as
    thick as the image is small (a tight crop of a bold digit) any window would eat them, and the
    surface alone is the background.
    """
    bh, bw = small.shape
    side = min(bw, bh)
    coarse = resize(small, fit(small.shape, COARSE), Image.BOX) if max(bw, bh) > COARSE else small  # cheap
    wide = median_filter(coarse, min(coarse.shape) // 2 | 1, "reflect")
    wide = resize(wide, (bw, bh), Image.BILINEAR) if wide.shape != small.shape else wide
    thin = _page_strokes(_rough_ink(small - wide), side)
    page = thin is not None
    stroke = _stroke_width(_rough_ink(small - surface), side // 4)
    if int(3 * stroke) + 1 > side // 2 and page:  # a shadow taken for a bold stroke, that the median followed
        stroke = thin
    k = max(3, side // 4, int(3 * stroke) + 1) | 1
    h, w = g.shape
    if k > side // 2:
        return resize(surface, (w, h), Image.BILINEAR) if (bw, bh) != (w, h) else surface
    opened = minmax_filter(minmax_filter(small, k, np.minimum), k, np.maximum)
    bg = np.maximum(opened, surface)
    if page:  # where the median is well above, and that comes in from the border
        bg = np.where(_from_border(wide - bg > 2 * MIN_CONTRAST), wide, bg)
    bg = box_blur(bg, 1)
    if (bw, bh) == (w, h):
        return bg
    bg = resize(bg, (w, h), Image.BILINEAR)
    # Smoothing leaves the background short of every sharp step it has (the sheet's edge against
    # a table), a ridge that would read as ink. Grow it back under the image (geodesic dilation):
    # it climbs the step's bright side, but never into strokes, which paper surrounds.
    for _ in range(int(2 * w / bw) + 1):
        bg = np.minimum(minmax_filter(bg, 3, np.maximum), g)
    return bg


def _page_strokes(rough: np.ndarray, side: int) -> float | None:
    """The stroke width of a page's rough ink (against the wide median), None if not a page: a page is
    mostly paper (rough ink under a tenth of the image) with thin strokes, so the median sees the paper.
    Strokes are measured only on mostly paper: elsewhere their width decides nothing."""
    if rough.mean() >= 0.1:
        return None
    thin = _stroke_width(rough, side // 4)
    return thin if int(3 * thin) + 1 <= side // 4 else None


def _from_border(mask: np.ndarray) -> np.ndarray:
    """The parts of a mask (8-connected) that touch the image's border."""
    labels, count = label(mask)
    keep = np.zeros(count + 1, bool)
    keep[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    keep[0] = False
    return keep[labels]


def _rough_ink(res: np.ndarray) -> np.ndarray:
    """Ink at a glance, for measuring strokes: what stands above a background by more than Otsu's split."""
    return res > max(otsu_threshold(res.ravel()), 0.0)


def _stroke_width(ink: np.ndarray, thin: int) -> float:
    """Typical stroke width of a rough ink mask (twice its area over its outline), backdrops left out.

    A shadow or a table in the mask is broad both ways and would pass for a stroke as wide as the
    image. The broad pixels (shorter run across over `thin` px) of a component that is nearly all
    broad and comes in from the border, or that lies along the border for a side's length (a shadow
    the digit touches, joined to it), are left out with their outline, unless it spans the image (a
    tight crop's bold digit); a marker digit with paper all round it, and a bold digit's filled
    loop among thinner strokes, stay. If that leaves not even a
    short stroke's worth, the broad regions are the strokes (a tight crop of a bold 1), unless they
    lie along the border for the image's length, as a shadow does: then the strokes are too thin to
    show at this size.
    """
    across = np.minimum(run_lengths(ink), run_lengths(ink.T).T)
    broad = ink & (across > thin)
    labels, count = label(ink)
    h, w = ink.shape
    along = np.concatenate([labels[0], labels[-1], labels[1:-1, 0], labels[1:-1, -1]])
    contact = np.bincount(along, minlength=count + 1)
    backdrop = np.zeros(count + 1, bool)
    for c in components(labels, broad):
        backdrop[c.label] = (((c.mass >= 0.9 * c.area and contact[c.label] > 0) or contact[c.label] >= max(h, w))
                             and not (c.height >= 0.9 * h and c.width >= 0.9 * w))
    strokes = ink & ~(broad & backdrop[labels])
    if np.count_nonzero(strokes) < max(h, w) // 4:
        if np.count_nonzero(backdrop[along]) < max(h, w):
            strokes = ink
    paper = ~ink
    outline = (np.count_nonzero(strokes[1:] & paper[:-1]) + np.count_nonzero(strokes[:-1] & paper[1:])
               + np.count_nonzero(strokes[:, 1:] & paper[:, :-1]) + np.count_nonzero(strokes[:, :-1] & paper[:, 1:]))
    return 2.0 * np.count_nonzero(strokes) / max(outline, 1)


@dataclass
class Ink:
    """What `find_ink` learned about a gray image (ink-bright convention throughout)."""

    ink: np.ndarray  # float32 0..1: soft stroke intensity, 0 = background, 1 = full-strength stroke
    mask: np.ndarray  # bool: pixels confidently ink (hysteresis threshold)
    labels: np.ndarray  # int32: 8-connected components of `mask` (0 = background; numbers may skip)
    contrast: np.ndarray  # float32: background-removed signal in gray levels
    noise: float  # robust standard deviation of the background's noise, gray levels (before smoothing)
    dark: bool  # the ink was darker than the paper (and has been inverted)


def _levels(r: np.ndarray) -> tuple[float, float, float]:
    """(paper level, Otsu threshold, noise sigma) of a background-removed image.

    The paper is the bulk of the pixels, sigma-clipped; when ink is plentiful (a clean two-level
    split), Otsu's darker class is the place to start from, else Otsu only split the paper's own
    noise under a thin tail of ink. Noise is the paper's spread around its own 5x5 mean, so
    neither shading the background model missed nor ink next to the paper (every paper pixel of
    a tight crop is near a stroke) counts as noise.
    """
    sample = subsample(r, 6000)
    otsu, separation = otsu_split(sample)
    paper = sample < otsu if separation >= MIN_SEPARATION else np.ones(sample.shape, bool)
    q25, med, q75 = quantiles(sample[paper], (0.25, 0.5, 0.75))
    paper &= np.abs(sample - med) <= max(3.0 * (q75 - q25) / 1.349, 1.0)
    noise = 0.0
    if paper.any():
        weight = paper.astype(np.float32)
        local = box_blur(sample * weight, 2) / np.maximum(box_blur(weight, 2), np.float32(1e-6))  # ink left out
        q25, q75 = quantiles((sample - local)[paper], (0.25, 0.75))
        noise = (q75 - q25) / 1.349
    return med, otsu, noise


def _rules(mask: np.ndarray) -> np.ndarray | None:
    """Pixels of ruled or squared paper's lines: thin, straight, across most of the image.

    A pixel is a rule if it lies on a horizontal run over 60% of the width (measured on the mask
    thickened 3 px vertically, so a slightly tilted line still makes long runs) while its vertical
    run is thin; a pen stroke crossing the line has a long vertical run and stays. Likewise for
    vertical lines. None when there are no rules (the usual case, checked cheaply first).
    """
    found = None
    for m in (mask, mask.T):
        h, w = m.shape
        if w < 32 or h < 8:
            continue
        band = m.copy()
        band[1:] |= m[:-1]
        band[:-1] |= m[1:]
        if np.count_nonzero(band.sum(axis=1) >= 0.6 * w) == 0:
            continue
        long = run_lengths(band) >= 0.6 * w
        if not long.any():
            continue
        thin = run_lengths(m.T).T <= max(2, round(0.025 * h))
        line = long & thin & m
        if line.any():
            line = line if m is mask else line.T
            found = line if found is None else found | line
    return found


def find_ink(gray: np.ndarray, dark_ink: bool | None = None) -> Ink:
    """Background-removed ink signal, mask and components of a gray array (polarity found if None).

    The mask is a hysteresis threshold above the noise floor: seeds above max(Otsu, 5 sigma, a
    minimum contrast), grown through connected pixels above half that, so faint stroke parts stay
    attached to their digit while isolated noise never seeds (noisy images are smoothed 3x3
    first). The soft ink is the contrast scaled so a typical stroke pixel (75th percentile of the
    mask) is 1, which keeps anti-aliased edges grey.
    """
    g = np.asarray(gray, dtype=np.float32)
    h, w = g.shape
    bw, bh = fit((h, w), 48) if max(h, w) > 48 else (w, h)
    dark = ink_is_dark(g) if dark_ink is None else bool(dark_ink)
    if dark:
        g = 255.0 - g
    small = resize(g, (bw, bh), Image.BOX) if (bw, bh) != (w, h) else g
    surface = _paper_surface(small, small < otsu_threshold(small))  # paper: the darker side now
    r = g - _background(g, small, surface)
    med, otsu, noise = _levels(r)
    sigma = noise  # of the image thresholded below
    if noise > NOISY:
        r = box_blur(r, 1)
        med, otsu, sigma = _levels(r)
        sigma = max(sigma, noise / 3.0)  # what a 3x3 mean leaves of white noise; jitter misses it
    contrast = np.maximum(r - med, 0.0)
    high = max(otsu - med, MIN_SNR * sigma, 0.5 * MIN_CONTRAST)
    low = max(0.5 * high, 2.5 * sigma)
    weak = contrast > low
    rules = _rules(weak)
    if rules is not None:  # ruled or squared paper: its lines are not ink
        weak &= ~rules
        contrast = np.where(rules, 0.0, contrast)
    labels, count = label(weak)
    if count:
        keep = np.zeros(count + 1, np.int32)
        keep[labels[contrast > high]] = 1
        keep[0] = 0
        labels = (keep * np.arange(count + 1, dtype=np.int32))[labels]
    mask = labels > 0
    ink = np.zeros_like(contrast)
    if mask.any():
        level = quantiles(contrast[mask], (0.75,))[0]
        floor = max(2.0 * sigma, 0.25 * low)
        if level > floor:
            ink = np.clip((contrast - floor) / (level - floor), 0.0, 1.0)
    return Ink(ink=ink.astype(np.float32), mask=mask, labels=labels, contrast=contrast, noise=noise, dark=dark)


def ink_mask(image: Image.Image, max_side: int = 2 * WORK_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """(soft ink 0..1 with ink bright, boolean ink mask) of an image, long side at most `max_side`.

    For splitting a photo into digits: `label(mask)`, then `frame_digit` on each component's
    crop of the soft ink. The default resolution is twice `to_mnist`'s: a row of digits needs
    more pixels than one digit does.
    """
    found = find_ink(working_gray(image, max_side))
    return found.ink, found.mask


def working_gray(image: Image.Image, max_side: int = WORK_SIDE) -> np.ndarray:
    """`to_gray` at working resolution: long side at most `max_side`, tiny images upscaled to 64 px."""
    g = to_gray(image, max_side)
    if max(g.shape) < MIN_WORK_SIDE:
        g = np.clip(resize(g, fit(g.shape, MIN_WORK_SIDE), Image.BICUBIC), 0, 255)
    return g
