"""Real photos, scans and screen drawings of a digit -> 28x28 arrays framed exactly like MNIST.

A model trained on MNIST only reads digits that look like MNIST: white ink on black, the digit
scaled so its longer side is 20 px, anti-aliased grey edges, centre of mass at the centre of a
28x28 field. Photos differ in every one of those, plus lighting, paper texture and specks, so this
module undoes each difference in turn. numpy and Pillow only: this runs on the device.

Pipeline (`to_mnist`): gray working image (EXIF, every mode, alpha) -> ink polarity -> background
removal (morphological opening, so uneven light and paper tone drop out) -> hysteresis threshold
above the noise floor -> connected components, keep the digit and drop specks -> soft ink
intensity -> `frame_digit` (crop, scale to 20 px, centre by mass).
"""

from __future__ import annotations

import functools
import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from edge.errors import UserError

MAX_PIXELS = 64_000_000
"""Refuse larger images (decompression bombs): 8000x8000 still passes, and so does a 50 MP phone."""
LOAD_SIDE = 1024
"""`load_image` asks JPEG decoders for at least this long a side (DCT scaling: fast and clean)."""
WORK_SIDE = 200
"""Longest working image side: a digit a third of the frame tall still gets 40-80 px."""
MIN_WORK_SIDE = 64
"""Smaller inputs (16x16 scans, icons) are upscaled first so thresholds and centring stay smooth."""
BOX = 20
"""MNIST fits each digit's longer side to 20 px ..."""
SIZE = 28
"""... and centres it by mass in a 28x28 field."""
MIN_STROKE = 1.6
BBOX_LEVEL = 0.1
"""Ink at this fraction of the strongest counts for the bounding box (fainter is blur or halo)."""
MIN_CONTRAST = 16.0
"""Ink must differ from the paper by this many gray levels (of 255) at least, or there is no digit."""
MIN_SNR = 5.0
"""... and by this many times the noise level of the background."""
MIN_SEPARATION = 0.8
"""Around a digit, ink and paper must explain this share of the contrast's variance (`_separation`)."""
MIN_DIGIT = 0.04
"""A digit spans at least this fraction of the image's longer side; smaller marks are specks."""
NOISY = 4.0
"""Background noise (gray levels) above which the image is smoothed 3x3 before thresholding."""
SOFTEN = 0.5
"""Gaussian sigma (px of the 28x28 output) that softens a digit shrunk into the box: the network learnt
from digits warped with bilinear sampling, measurably softer than crisp ink area-averaged from a
drawing or a scan (edge gradient per unit of ink 0.99 in training, 1.03 for framed drawings, 0.94
after softening)."""

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class NoDigit(UserError):
    """The image holds no ink worth reading (blank, noise only, or too faint): answer "no digit"."""


# --------------------------------------------------------------------------------------------------
# Loading


def load_image(source: str | os.PathLike | bytes, *, max_side: int | None = LOAD_SIDE,
               name: str = "upload") -> Image.Image:
    """Open and fully decode an image file (or its bytes, called `name` in errors), EXIF applied.

    Any failure is a UserError. Decoding here (not lazily later) is what catches truncated files.
    JPEGs are decoded at the smallest DCT scale that keeps `max_side` px (None: full size), which
    makes 12 MP photos cheap. Bytes are decoded in memory: a server never writes uploads to disk.
    """
    if isinstance(source, bytes):
        path, size, fp = name, len(source), io.BytesIO(source)
    else:
        path = fp = Path(source)
        try:
            if path.is_dir():
                raise UserError(f"{path}: is a folder, not an image file")
            size = path.stat().st_size
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except OSError as exc:
            raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if size == 0:
        raise UserError(f"{path}: empty file, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fp) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise UserError(f"{path}: {w}x{h} image is too large ({w * h:,} pixels, at most {MAX_PIXELS:,})")
                if max_side and im.format == "JPEG" and max(w, h) > max_side:
                    scale = max(w, h) / max_side
                    im.draft(im.mode, (math.ceil(w / scale), math.ceil(h / scale)))
                im.load()
                image = ImageOps.exif_transpose(im)
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UserError(f"{path}: image too large, refused as a possible decompression bomb ({exc})") from None
    except Image.UnidentifiedImageError:
        raise UserError(f"{path}: not an image Pillow can read") from None
    except MemoryError:
        raise UserError(f"{path}: image too large to decode in memory") from None
    except Exception as exc:  # noqa: BLE001  Pillow's decoders raise many types on corrupt data
        raise UserError(f"{path}: unreadable or truncated image ({type(exc).__name__}: {exc})".replace("\n", " ")) from None
    if image.width == 0 or image.height == 0:
        raise UserError(f"{path}: image has no pixels")
    return image


# --------------------------------------------------------------------------------------------------
# Gray levels


def to_gray(image: Image.Image, max_side: int | None = None) -> np.ndarray:
    """Any Pillow image -> float32 gray array in 0..255, EXIF-rotated, alpha composited.

    Transparent areas become the colour that contrasts with the visible strokes (a drawing app's
    strokes on nothing), or the paper's own tone when most of the image is opaque (a cut-out), so
    transparency is never read as ink. `max_side` box-downscales early, before any float work.
    """
    if image.getexif().get(0x0112, 1) != 1:
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    if mode == "P":
        mode = "RGBA" if "transparency" in image.info else "RGB"
        image = image.convert(mode)
    elif mode == "PA":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "La", "RGBa"):
        if mode == "RGBa":  # premultiplied: undo that first
            image = image.convert("RGBA")
        image = image.convert("LA")
        image = _shrink(image, max_side)
        la = np.asarray(image, dtype=np.float32)
        return _composite(la[..., 0], la[..., 1] / 255.0)
    if mode in ("I", "F") or mode.startswith("I;16"):
        image = Image.fromarray(np.round(_scale_wide(np.asarray(image))).astype(np.uint8))
    elif mode != "L":
        try:
            image = image.convert("L")
        except (ValueError, OSError):
            image = image.convert("RGB").convert("L")
    image = _shrink(image, max_side)
    return np.asarray(image, dtype=np.float32)


def _shrink(image: Image.Image, max_side: int | None) -> Image.Image:
    """Box-downscale by the smallest integer factor that brings the long side to `max_side` or less.

    Integer `reduce` is an exact box filter (clean anti-aliasing) and several times faster than a
    resampling resize; the working size then lies between a half and all of `max_side`.
    """
    if not max_side or max(image.size) <= max_side:
        return image
    return image.reduce(math.ceil(max(image.size) / max_side))


def _scale_wide(a: np.ndarray) -> np.ndarray:
    """16-bit, 32-bit and float pixels -> 0..255, by the range their type suggests.

    Floats within 0..1 are fractions; integers within 0..255 are already 8-bit, within 0..65535
    16-bit; binary 0/1 images and anything else (negative, huge) are stretched min-max.
    """
    is_float = np.issubdtype(a.dtype, np.floating)
    a = np.asarray(a, dtype=np.float64)
    a = np.where(np.isfinite(a), a, 0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo >= 0 and is_float and hi <= 1.0:
        return a * 255.0
    if lo >= 0 and 1.0 < hi <= 255:
        return a
    if lo >= 0 and 255 < hi <= 65535 and not is_float:
        return a / 257.0
    return (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)


def _composite(lum: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    opaque = alpha > 0.5
    frac = float(opaque.mean())
    if frac == 0.0:
        return np.zeros_like(lum)  # nothing visible at all: a blank image
    if frac > 0.5:
        bg = float(np.median(lum[opaque]))  # mostly opaque: transparent corners take the paper's tone
    else:
        vis = float((lum * alpha).sum() / alpha.sum())
        bg = 255.0 if vis < 128 else 0.0  # strokes on nothing: put them on a contrasting ground
    return (lum * alpha + bg * (1.0 - alpha)).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Small numpy morphology (Pillow's rank filters sort every window: far too slow here)


def _minmax_filter(a: np.ndarray, k: int, op) -> np.ndarray:
    """Square k x k min or max filter (separable, `op` np.minimum or np.maximum), edges replicated."""
    if k <= 1:
        return a
    r = k // 2
    h, w = a.shape
    p = np.pad(a, r, mode="edge")
    rows = p[:, 0:w].copy()
    for i in range(1, 2 * r + 1):
        op(rows, p[:, i:i + w], out=rows)
    out = rows[0:h].copy()
    for i in range(1, 2 * r + 1):
        op(out, rows[i:i + h], out=out)
    return out


def _box_blur(a: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window, edges replicated (cumulative sums: cost independent of r)."""
    if r <= 0:
        return a
    k = 2 * r + 1
    p = np.pad(a.astype(np.float64), r, mode="edge")
    c = np.cumsum(p, axis=0)
    c = np.concatenate([np.zeros((1, c.shape[1])), c])
    rows = c[k:] - c[:-k]
    c = np.cumsum(rows, axis=1)
    c = np.concatenate([np.zeros((c.shape[0], 1)), c], axis=1)
    return ((c[:, k:] - c[:, :-k]) / (k * k)).astype(np.float32)


def _soften(a: np.ndarray, sigma: float) -> np.ndarray:
    """3x3 gaussian blur inside the array's own bounds (zero outside), peak brought back to 1."""
    t = float(np.exp(-0.5 / sigma ** 2))
    k = np.array([t, 1.0, t], np.float32) / (1.0 + 2.0 * t)
    p = np.pad(a, 1)
    rows = k[0] * p[:-2] + k[1] * p[1:-1] + k[2] * p[2:]
    out = k[0] * rows[:, :-2] + k[1] * rows[:, 1:-1] + k[2] * rows[:, 2:]
    return out / max(float(out.max()), 1e-6)


def _resize(a: np.ndarray, size: tuple[int, int], resample=Image.BILINEAR) -> np.ndarray:
    """Resize a float32 array to (width, height) through Pillow's 'F' mode."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), "F").resize(size, resample))


# --------------------------------------------------------------------------------------------------
# Connected components


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected components of a boolean mask: (int32 labels, 0 = background, and their count).

    Works on row runs (numpy finds the runs and which runs of the next row they touch, then a
    vectorised union-find merges them), so it costs about as much as a few passes over the mask.
    """
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    labels = np.zeros((h, w), np.int32)
    if h == 0 or w == 0:
        return labels, 0
    m = np.zeros((h, w + 2), np.int8)
    m[:, 1:-1] = mask
    d = np.diff(m, axis=1)
    sr, sc = np.nonzero(d == 1)  # run starts, in raster order
    ec = np.nonzero(d == -1)[1]  # run ends (exclusive), same order
    n = sr.size
    if n == 0:
        return labels, 0
    k = w + 2
    start_key = sr * k + sc
    last_key = sr * k + ec - 1
    # Runs b of the next row touching run a (8-connected): last_b >= start_a - 1 and start_b <= last_a + 1.
    lo = np.searchsorted(last_key, (sr + 1) * k + sc - 1, "left")
    hi = np.searchsorted(start_key, (sr + 1) * k + ec, "right")
    cnt = np.maximum(hi - lo, 0)
    parent = np.arange(n)
    total = int(cnt.sum())
    if total:
        u = np.repeat(np.arange(n), cnt)
        v = np.arange(total) - np.repeat(np.cumsum(cnt) - cnt, cnt) + np.repeat(lo, cnt)
        while True:
            pu, pv = parent[u], parent[v]
            low = np.minimum(pu, pv)
            new = parent.copy()
            np.minimum.at(new, pu, low)
            np.minimum.at(new, pv, low)
            while True:  # pointer jumping: every run points at its root
                nxt = new[new]
                if np.array_equal(nxt, new):
                    break
                new = nxt
            if np.array_equal(new, parent):
                break
            parent = new
    roots, comp = np.unique(parent, return_inverse=True)
    labels.ravel()[mask.ravel()] = np.repeat(comp.astype(np.int32) + 1, ec - sc)
    return labels, int(roots.size)


class Box:
    """Height and width of anything with a half-open box: top, left, bottom, right."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left


@dataclass(frozen=True)
class Component(Box):
    """One connected blob of ink: its label, pixel count, ink mass and bounding box (half-open)."""

    label: int
    area: int
    mass: float
    top: int
    left: int
    bottom: int
    right: int


def components(labels: np.ndarray, weight: np.ndarray | None = None) -> list[Component]:
    """Area, ink mass (sum of `weight`, default area) and bounding box of every non-empty label."""
    ys, xs = np.nonzero(labels)
    if ys.size == 0:
        return []
    lab = labels[ys, xs]
    order = np.argsort(lab, kind="stable")
    lab, ys, xs = lab[order], ys[order], xs[order]
    starts = np.concatenate([[0], np.nonzero(np.diff(lab))[0] + 1])
    ids = lab[starts]
    area = np.diff(np.concatenate([starts, [lab.size]]))
    if weight is None:
        mass = area.astype(np.float64)
    else:
        mass = np.add.reduceat(np.asarray(weight, np.float64)[ys, xs], starts)
    top, bottom = np.minimum.reduceat(ys, starts), np.maximum.reduceat(ys, starts) + 1
    left, right = np.minimum.reduceat(xs, starts), np.maximum.reduceat(xs, starts) + 1
    return [Component(*map(int, (ids[i], area[i])), float(mass[i]), *map(int, (top[i], left[i], bottom[i], right[i])))
            for i in range(ids.size)]


# --------------------------------------------------------------------------------------------------
# Ink


def _otsu_split(values: np.ndarray) -> tuple[float, float]:
    """Otsu's threshold of values on any scale, and its effectiveness (0..1, see `_separation`)."""
    v = np.ravel(values)
    if v.size == 0:
        return 0.0, 0.0
    lo, hi = float(v.min()), float(v.max())
    if not hi - lo > 1e-6:
        return hi + 1.0, 0.0
    scale = 255.0 / (hi - lo)
    hist = np.bincount(((v - lo) * scale).astype(np.int64), minlength=256)[:256].astype(np.float64)
    hist[255] += v.size - hist.sum()  # the maximum itself lands in bin 256 when it scales to 255.0
    levels = np.arange(256, dtype=np.float64)
    total = float(v.size)
    w0 = np.cumsum(hist)
    m0 = np.cumsum(hist * levels)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (m0[-1] * w0 - m0 * total) ** 2 / (w0 * (total - w0))
    between[~np.isfinite(between)] = -1.0
    k = int(np.argmax(between))
    variance = float(hist @ (levels * levels)) / total - (m0[-1] / total) ** 2
    eta = float(between[k]) / total / total / variance if variance > 0 else 0.0
    return lo + (k + 1) / scale, min(max(eta, 0.0), 1.0)


def _otsu_any(values: np.ndarray) -> float:
    """Otsu's threshold of values on any scale: the lower class is values below it."""
    return _otsu_split(values)[0]


def _separation(values: np.ndarray) -> float:
    """Otsu's effectiveness: the between-class share of the variance (1 = two clean levels).

    Ink on paper is two levels, so around a real digit this is 0.8-1; noise, blotches and shading
    have a continuum of levels and stay near 0.7 (a Gaussian gives 0.64, a uniform 0.75).
    """
    return _otsu_split(values)[1]


def _quantiles(a: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Quantiles (0..1) of gray-level-like values, to 1/16 level, from a histogram.

    np.partition (under np.median and np.percentile) slows down a hundredfold on the heavily
    repeated values of clean backgrounds; a histogram costs the same whatever the data.
    """
    a = np.ravel(a)
    if a.size == 0:
        return [0.0 for _ in qs]
    bins = np.clip(((a + 512.0) * 16.0).astype(np.int64), 0, 16383)
    cumulative = np.cumsum(np.bincount(bins, minlength=16384))
    ranks = [min(a.size - 1, max(0, int(q * a.size))) for q in qs]
    return [float(np.searchsorted(cumulative, k + 1)) / 16.0 - 512.0 for k in ranks]


def _median(a: np.ndarray) -> float:
    return _quantiles(a, (0.5,))[0]


def _sample(a: np.ndarray, pixels: int = 8000) -> np.ndarray:
    """Every n-th row and column, n chosen to leave about `pixels` values: statistics stay cheap."""
    step = max(1, math.ceil(math.sqrt(a.size / pixels)))
    return a[::step, ::step]


def _fit(shape: tuple[int, int], side: int) -> tuple[int, int]:
    """(width, height) with the longer side `side`, aspect kept."""
    h, w = shape
    s = side / max(h, w)
    return max(1, round(w * s)), max(1, round(h * s))


@functools.lru_cache(maxsize=32)
def _quadratic_basis(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x = xx.ravel() / max(w - 1, 1) * 2 - 1
    y = yy.ravel() / max(h - 1, 1) * 2 - 1
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)


def _paper_surface(small: np.ndarray, paper: np.ndarray | None = None) -> np.ndarray:
    """The paper's gray level as a smooth surface (lighting gradient, vignetting), either polarity.

    A quadratic fitted to the paper pixels (by default those near the median), refitted as
    outliers (ink, of either sign) are trimmed. A constant is returned unless the surface fits the
    paper clearly better, so a bold digit filling a crop is never mistaken for lighting.
    """
    h, w = small.shape
    full_basis = basis = _quadratic_basis(h, w)
    if h >= 16 and w >= 16:  # fit on every other pixel: a quadratic needs few points
        small = small[::2, ::2]
        paper = None if paper is None else paper[::2, ::2]
        basis = full_basis.reshape(h, w, -1)[::2, ::2].reshape(-1, full_basis.shape[1])
    values = small.ravel()
    if paper is None:
        flat = _median(values)
        res = values - flat
        paper = np.abs(res) <= max(2.5 * 1.4826 * _median(np.abs(res)), 2.0)
    else:
        paper = paper.ravel()
        flat = _median(values[paper]) if paper.any() else _median(values)
        res = values - flat
    fitted = None
    for _ in range(2):
        if paper.sum() < basis.shape[1] * 4:
            break
        a = basis[paper]
        try:
            coef = np.linalg.solve(a.T @ a, a.T @ values[paper])
        except np.linalg.LinAlgError:
            break
        fitted = basis @ coef
        res = values - fitted
        paper = np.abs(res) <= max(2.5 * 1.4826 * _median(np.abs(res[paper])), 2.0)
    flat = _median(values[paper]) if paper.any() else flat
    if fitted is not None and paper.any():
        spread_fit = _median(np.abs(res[paper]))
        spread_flat = _median(np.abs(values[paper] - flat))
        if spread_fit < 0.8 * spread_flat:
            return (full_basis @ coef).reshape(h, w).astype(np.float32)
    return np.full((h, w), flat, np.float32)


def ink_is_dark(gray: np.ndarray) -> bool:
    """Polarity: is the ink darker than its background?

    Ink is the heavy tail: far more contrast lies beyond the paper's spread on the ink's side than
    on the other, measured against the median (even light, however bold the strokes), else
    against the local mean (a window a twelfth of the image, which lighting gradients follow but
    thin strokes barely move). If neither is clear, the background is whatever owns the border;
    a last tie goes to the skew.
    """
    g = np.asarray(gray, dtype=np.float32)
    sample = _sample(g)
    h, w = sample.shape
    coarse = _resize(g, _fit(g.shape, 12), Image.BOX) if max(g.shape) > 12 else g
    for reference, cap in ((np.float32(_median(sample)), 0.5), (_resize(coarse, (w, h), Image.BILINEAR), 0.2)):
        r = sample - reference
        beyond = 4.0 * 1.4826 * _median(np.abs(r)) + 4.0  # the paper's spread: ink is under half
        dark = np.maximum(-r - beyond, 0.0)
        bright = np.maximum(r - beyond, 0.0)
        dark_tail, bright_tail = float(dark.sum()), float(bright.sum())
        heavy = np.count_nonzero(dark if dark_tail > bright_tail else bright)
        if max(dark_tail, bright_tail) > 3.0 * min(dark_tail, bright_tail) and 0 < heavy < cap * r.size:
            return dark_tail > bright_tail
    b = max(1, round(min(h, w) / 16))
    bmed = _median(np.concatenate([sample[:b].ravel(), sample[-b:].ravel(), sample[:, :b].ravel(), sample[:, -b:].ravel()]))
    p1, med, p99 = _quantiles(sample, (0.01, 0.5, 0.99))
    dark_gap, bright_gap = bmed - p1, p99 - bmed
    if abs(dark_gap - bright_gap) > 0.25 * max(dark_gap, bright_gap, 1e-6):
        return bool(dark_gap > bright_gap)
    centred = sample - np.float32(med)
    return bool((centred * centred * centred).mean() < 0)


def _background(g: np.ndarray, small: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """The paper (or screen) alone, ink bright: subtract it and only ink is left.

    Worked out at ~48 px (`small`, with the paper `surface` fitted there). When strokes are thin
    next to the image, a morphological opening with a window over 3x the stroke width (at least
    a quarter of the image) follows shadows and creases but cannot follow strokes; it is floored
    by the surface, which knows vignetted corners the window is too wide for. When strokes are as
    thick as the image is small (a tight crop of a bold digit) any window would eat them, and the
    surface alone is the background.
    """
    bh, bw = small.shape
    res = small - surface
    ink0 = res > max(_otsu_any(res.ravel()), 0.0)
    edges = int((ink0[1:] != ink0[:-1]).sum() + (ink0[:, 1:] != ink0[:, :-1]).sum())
    stroke = 2.0 * int(ink0.sum()) / max(edges, 1)
    k = max(3, min(bw, bh) // 4, int(3 * stroke) + 1) | 1
    h, w = g.shape
    if k > min(bw, bh) // 2:
        return _resize(surface, (w, h), Image.BILINEAR) if (bw, bh) != (w, h) else surface
    opened = _minmax_filter(_minmax_filter(small, k, np.minimum), k, np.maximum)
    bg = _box_blur(np.maximum(opened, surface), 1)
    if (bw, bh) == (w, h):
        return bg
    bg = _resize(bg, (w, h), Image.BILINEAR)
    # Smoothing leaves the background short of every sharp step it has (the sheet's edge against
    # a table), a ridge that would read as ink. Grow it back under the image (geodesic dilation):
    # it climbs the step's bright side, but never into strokes, which paper surrounds.
    for _ in range(int(2 * w / bw) + 1):
        bg = np.minimum(_minmax_filter(bg, 3, np.maximum), g)
    return bg


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
    noise under a thin tail of ink. Noise is the paper's spread in a 5x5 high-pass, so shading
    the background model missed does not count as noise.
    """
    sample = _sample(r, 6000)
    otsu, separation = _otsu_split(sample)
    paper = sample < otsu if separation >= MIN_SEPARATION else np.ones(sample.shape, bool)
    q25, med, q75 = _quantiles(sample[paper], (0.25, 0.5, 0.75))
    paper &= np.abs(sample - med) <= max(3.0 * (q75 - q25) / 1.349, 1.0)
    noise = 0.0
    if paper.any():
        q25, q75 = _quantiles((sample - _box_blur(sample, 2))[paper], (0.25, 0.75))
        noise = (q75 - q25) / 1.349
    return med, otsu, noise


def _run_lengths(mask: np.ndarray) -> np.ndarray:
    """For every True pixel, the length of the horizontal run of True pixels it belongs to."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = mask
    d = np.diff(padded, axis=1)
    starts = np.nonzero(d.ravel() == 1)[0]
    ends = np.nonzero(d.ravel() == -1)[0]
    out = np.zeros(h * w, np.int32)
    out[mask.ravel()] = np.repeat((ends - starts).astype(np.int32), ends - starts)
    return out.reshape(h, w)


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
        long = _run_lengths(band) >= 0.6 * w
        if not long.any():
            continue
        thin = _run_lengths(m.T).T <= max(2, round(0.025 * h))
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
    bw, bh = _fit((h, w), 48) if max(h, w) > 48 else (w, h)
    dark = ink_is_dark(g) if dark_ink is None else bool(dark_ink)
    if dark:
        g = 255.0 - g
    small = _resize(g, (bw, bh), Image.BOX) if (bw, bh) != (w, h) else g
    surface = _paper_surface(small, small < _otsu_any(small))  # paper: the darker side now
    r = g - _background(g, small, surface)
    med, otsu, noise = _levels(r)
    sigma = noise  # of the image thresholded below
    if noise > NOISY:
        r = _box_blur(r, 1)
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
        level = _quantiles(contrast[mask], (0.75,))[0]
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
        g = np.clip(_resize(g, _fit(g.shape, MIN_WORK_SIDE), Image.BICUBIC), 0, 255)
    return g


# --------------------------------------------------------------------------------------------------
# The digit


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
    # shadow, the sheet's edge), not a digit, if a digit-sized alternative exists.
    edge = np.concatenate([found.labels[0], found.labels[-1], found.labels[:, 0], found.labels[:, -1]])
    contact = np.bincount(edge, minlength=int(found.labels.max()) + 1)
    backdrop = {c.label for c in comps if contact[c.label] >= 0.15 * 2 * (h + w)}
    if backdrop:
        alternatives = [c for c in strong if c.label not in backdrop and max(c.height, c.width) >= 0.1 * max(h, w)]
        if alternatives:
            strong = alternatives
            comps = [c for c in comps if c.label not in backdrop]
    main = max(strong, key=lambda c: c.mass)
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
    separation = _separation(region)
    group_area = sum(c.area for c in comps if c.label in set(keep))
    snr = mass / group_area / max(found.noise, 1e-6)
    # Ink is two clean levels, or at least far above the noise; blotches and noise are neither.
    if separation < 0.72 or (separation < MIN_SEPARATION and snr < 8.0):
        raise NoDigit("no digit found: only shading or noise, nothing that stands apart like ink")
    lut = np.zeros(int(found.labels.max()) + 1, bool)
    lut[keep] = True
    return lut[found.labels]


def frame_digit(ink: np.ndarray) -> np.ndarray:
    """A crop of soft ink (ink bright; float 0..1 or uint8) -> 28x28 uint8 framed like MNIST.

    The ink's bounding box is scaled so its longer side is 20 px (area-averaging, which makes
    MNIST's grey anti-aliased edges), then pasted so its centre of mass lands on pixel (14, 14),
    to the nearest pixel, as MNIST's own centring did.
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
        edges = int((core[1:] != core[:-1]).sum() + (core[:, 1:] != core[:, :-1]).sum()) + 2 * int(core[0].sum() + core[-1].sum() + core[:, 0].sum() + core[:, -1].sum())
        width = 2.0 * int(core.sum()) / max(edges, 1)
        if width * s < MIN_STROKE:
            k = int(round(MIN_STROKE / s - width)) + 1
            k += 1 - k % 2
            if k >= 3:
                crop = _minmax_filter(np.pad(crop, k // 2), k, np.maximum)
                h, w = crop.shape
                s = BOX / max(h, w)
    size = (max(1, min(BOX, round(w * s))), max(1, min(BOX, round(h * s))))
    resample = Image.BOX if s < 1 else Image.BILINEAR
    small = np.clip(_resize(crop, size, resample), 0.0, None)
    top_val = float(small.max())
    if not top_val > 0:
        raise NoDigit("no digit found: no ink in the crop")
    small = np.clip(small / max(top_val, 1e-6) if top_val < 1 else small, 0.0, 1.0)
    if SOFTEN > 0 and s < 1:  # enlarging (bilinear) softens already
        small = _soften(small, SOFTEN)
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
    found = find_ink(working_gray(image, WORK_SIDE))
    digit = select_digit(found)
    rows = np.nonzero(digit.any(axis=1))[0]
    cols = np.nonzero(digit.any(axis=0))[0]
    t, b = max(rows[0] - 1, 0), rows[-1] + 2
    l, r = max(cols[0] - 1, 0), cols[-1] + 2
    near = _minmax_filter(digit[t:b, l:r].astype(np.uint8), 3, np.maximum) > 0  # keep anti-aliased rims
    return frame_digit(np.where(near, found.ink[t:b, l:r], 0.0))
