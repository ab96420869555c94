"""Small numpy image tools with no digit knowledge, beneath every stage of the pipeline.

Morphology, blurs, resizing through Pillow, connected components, Otsu's split, histogram
quantiles. numpy and Pillow only (Pillow's rank filters are exact but 4x slower: see median_filter).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image


def minmax_filter(a: np.ndarray, k: int, op) -> np.ndarray:
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


def median_filter(a: np.ndarray, k: int, mode: str = "edge") -> np.ndarray:
    """Square k x k (k odd) median filter, edges replicated (or mirrored, `mode` "reflect", for windows
    so wide that a line along the border, repeated, would fill them): it keeps steps (a shadow's edge)
    where any blur would smear them, and drops whatever covers under half of each window (thin strokes).

    The windows hold the values' ranks among the image's distinct values, not the values: the middle
    rank is the rank of the middle value, so the output is the same (whatever the dtype), and int16
    ranks (int32 past 32768 levels) copy and partition faster than wider values: 1.15-1.5x against int32
    ones, most where ties abound (flat paper). Pillow's MedianFilter is C and exact, and copies no k*k
    values a pixel, but its branchy quickselect a window is 4x slower on photos-dev's samples.
    """
    if k <= 1:
        return a
    r = k // 2
    levels, ranks = np.unique(a, return_inverse=True)
    ranks = ranks.reshape(a.shape).astype(np.int16 if levels.size <= 1 << 15 else np.int32)
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(ranks, r, mode=mode), (k, k))
    flat = windows.reshape(a.shape + (k * k,))
    return levels[np.partition(flat, k * k // 2, axis=-1)[..., k * k // 2]]


def box_blur(a: np.ndarray, r: int) -> np.ndarray:
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


def soften(a: np.ndarray, sigma: float) -> np.ndarray:
    """3x3 gaussian blur inside the array's own bounds (zero outside), peak brought back to 1."""
    t = float(np.exp(-0.5 / sigma ** 2))
    k = np.array([t, 1.0, t], np.float32) / (1.0 + 2.0 * t)
    p = np.pad(a, 1)
    rows = k[0] * p[:-2] + k[1] * p[1:-1] + k[2] * p[2:]
    out = k[0] * rows[:, :-2] + k[1] * rows[:, 1:-1] + k[2] * rows[:, 2:]
    return out / max(float(out.max()), 1e-6)


def resize(a: np.ndarray, size: tuple[int, int], resample=Image.BILINEAR) -> np.ndarray:
    """Resize a float32 array to (width, height) through Pillow's 'F' mode."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), "F").resize(size, resample))


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
    """One connected blob of ink: its label, pixel count, ink mass, bounding box (half-open) and
    perimeter (pixel sides facing other labels, the background or the image's edge)."""

    label: int
    area: int
    mass: float
    top: int
    left: int
    bottom: int
    right: int
    perimeter: int

    @property
    def stroke(self) -> float:
        """Mean stroke width: a line of width s and length l has area s*l and perimeter about 2*l."""
        return 2.0 * self.area / max(self.perimeter, 1)


def components(labels: np.ndarray, weight: np.ndarray | None = None) -> list[Component]:
    """Area, ink mass (sum of `weight`, default area), bounding box and perimeter of every non-empty label."""
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
    padded = np.pad(labels, 1)
    sides = np.zeros(int(ids.max()) + 1, np.int64)
    for a, b in ((padded[1:], padded[:-1]), (padded[:, 1:], padded[:, :-1])):
        change = a != b
        sides += np.bincount(a[change], minlength=sides.size) + np.bincount(b[change], minlength=sides.size)
    return [Component(*map(int, (ids[i], area[i])), float(mass[i]),
                      *map(int, (top[i], left[i], bottom[i], right[i], sides[ids[i]]))) for i in range(ids.size)]


def otsu_split(values: np.ndarray) -> tuple[float, float]:
    """Otsu's threshold of values on any scale, and its effectiveness (0..1, see `otsu_separation`)."""
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


def otsu_threshold(values: np.ndarray) -> float:
    """Otsu's threshold of values on any scale: the lower class is values below it."""
    return otsu_split(values)[0]


def otsu_separation(values: np.ndarray) -> float:
    """Otsu's effectiveness: the between-class share of the variance (1 = two clean levels).

    Ink on paper is two levels, so around a real digit this is 0.8-1; noise, blotches and shading
    have a continuum of levels and stay near 0.7 (a Gaussian gives 0.64, a uniform 0.75).
    """
    return otsu_split(values)[1]


def quantiles(a: np.ndarray, qs: tuple[float, ...]) -> list[float]:
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


def median(a: np.ndarray) -> float:
    return quantiles(a, (0.5,))[0]


def subsample(a: np.ndarray, pixels: int = 8000) -> np.ndarray:
    """Every n-th row and column, n chosen to leave about `pixels` values: statistics stay cheap."""
    step = max(1, math.ceil(math.sqrt(a.size / pixels)))
    return a[::step, ::step]


def fit(shape: tuple[int, int], side: int) -> tuple[int, int]:
    """(width, height) with the longer side `side`, aspect kept."""
    h, w = shape
    s = side / max(h, w)
    return max(1, round(w * s)), max(1, round(h * s))


@functools.lru_cache(maxsize=32)
def quadratic_basis(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    x = xx.ravel() / max(w - 1, 1) * 2 - 1
    y = yy.ravel() / max(h - 1, 1) * 2 - 1
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)


def run_lengths(mask: np.ndarray) -> np.ndarray:
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
