"""edge.preprocess: real photos, scans and drawings -> MNIST-framed 28x28, and bad input -> UserError.

The photo-like images are rendered here from MNIST test digits (grey paper, uneven light, noise,
JPEG, small rotations, thick and thin strokes, off-centre, 60 to 1600 px), so every check can
compare against the digit that went in. No TensorFlow: these run on the device's dependencies.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFilter

from edge import preprocess as P
from edge.errors import UserError
from edge.preprocess import NoDigit, frame_digit, ink_mask, load_image, to_mnist
from edge.preprocess.filters import median_filter, subsample
from negatives import photograph, shape
from shadowed import render
from strokes import ORDINARY, render as render_strokes


@pytest.fixture(scope="module")
def mnist(datasets_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    data = np.load(datasets_dir / "mnist" / "mnist.npz")
    return data["x_test"], data["y_test"]


# --------------------------------------------------------------------------------------------------
# Helpers


def bbox_side(a: np.ndarray) -> int:
    ys, xs = np.nonzero(a)
    return int(max(ys.max() - ys.min(), xs.max() - xs.min()) + 1)


def centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    f = a.astype(np.float64)
    m = f.sum()
    return (f.sum(axis=1) @ np.arange(28)) / m, (f.sum(axis=0) @ np.arange(28)) / m


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation after a 3x3 blur, so a stroke one pixel over still counts as the same."""
    def blur(v: np.ndarray) -> np.ndarray:
        f = np.pad(v.astype(np.float64), 1)
        return sum(f[dy:dy + 28, dx:dx + 28] for dy in range(3) for dx in range(3))
    return float(np.corrcoef(blur(a).ravel(), blur(b).ravel())[0, 1])


def gray16(a: np.ndarray) -> Image.Image:
    return Image.frombytes("I;16", (a.shape[1], a.shape[0]), a.astype("<u2").tobytes())


def assert_mnist_framed(out: np.ndarray) -> None:
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert 19 <= bbox_side(out) <= 21, bbox_side(out)
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1, (cy, cx)
    assert out.max() == 255


def render_photo(digit: np.ndarray, rng: np.random.Generator, *, side: int, thickness: float = 0.0,
                 rotate: float = 0.0, jpeg: bool = True) -> Image.Image:
    """Dark ink on grey paper, uneven light, paper texture, noise, JPEG: a phone photo of `digit`."""
    ys, xs = np.nonzero(digit)
    crop = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    height = int(side * rng.uniform(0.35, 0.6))
    scale = height / crop.shape[0]
    big = Image.fromarray(crop).resize((max(1, round(crop.shape[1] * scale)), height), Image.BICUBIC)
    big = big.rotate(rotate, resample=Image.BICUBIC, expand=True)
    ink = np.clip((np.asarray(big, np.float32) - (128 - 100 * thickness)) / 40 + 0.5, 0, 1)
    h, w = ink.shape
    canvas_h, canvas_w = side, int(side * 1.25)
    top = int(rng.integers(0, canvas_h - h + 1))
    left = int(rng.integers(0, canvas_w - w + 1))
    cover = np.zeros((canvas_h, canvas_w), np.float32)
    cover[top:top + h, left:left + w] = ink
    yy, xx = np.mgrid[0:canvas_h, 0:canvas_w].astype(np.float32)
    light = 1.0 - 0.35 * xx / canvas_w - 0.15 * ((yy / canvas_h - 0.6) ** 2)
    texture = np.asarray(Image.fromarray(rng.normal(0, 1, (canvas_h // 16 + 2, canvas_w // 16 + 2)).astype(np.float32), "F")
                         .resize((canvas_w, canvas_h), Image.BICUBIC))
    paper = np.array([205.0, 200.0, 185.0]) * (1 + 0.02 * texture[..., None])
    pen = np.array([35.0, 40.0, 90.0])
    rgb = (paper * (1 - cover[..., None]) + pen * cover[..., None]) * light[..., None]
    rgb += rng.normal(0, 4, rgb.shape)
    return _as_saved(rgb, 75 if jpeg else None)


def _as_saved(rgb: np.ndarray, quality: int | None) -> Image.Image:
    """Float RGB -> the image a phone would save: 8-bit, through JPEG at `quality` (None: lossless)."""
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    if quality:
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=quality)
        image = Image.open(io.BytesIO(buf.getvalue()))
        image.load()
    return image


def drawing(digit: np.ndarray, size: int = 280, brush: int = 1) -> np.ndarray:
    """A screen drawing: the digit big and off-centre on a square canvas, white on black."""
    ys, xs = np.nonzero(digit)
    crop = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    scale = size * 0.6 / crop.shape[0]
    big = Image.fromarray(crop).resize((max(1, round(crop.shape[1] * scale)), round(crop.shape[0] * scale)), Image.BICUBIC)
    if brush > 1:
        big = big.filter(ImageFilter.MaxFilter(brush))
    canvas = np.zeros((size, size), np.uint8)
    canvas[size // 10:size // 10 + big.height, size // 8:size // 8 + big.width] = np.asarray(big)
    return canvas


def pen_line(digit: np.ndarray, height: int) -> np.ndarray:
    """An MNIST digit at `height` px, thinned to a pen line (only the core of its strokes), ink 0..1."""
    ys, xs = np.nonzero(digit > 60)
    crop = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    scale = height / crop.shape[0]
    big = Image.fromarray(crop).resize((max(1, round(crop.shape[1] * scale)), height), Image.BICUBIC)
    return np.clip((np.asarray(big, np.float32) - 215) / 25, 0, 1)


def render_page(digit: np.ndarray, neighbours: list[np.ndarray], rng: np.random.Generator, *, side: int = 1200,
                jpeg: bool = True) -> Image.Image:
    """A whole, uncropped phone photo of a page: `digit` small and thin-penned near the centre, pieces
    of `neighbours` cut off by the frame's edges, a shadow over part of the sheet, faint printed
    lines showing through, noise and JPEG (as photos-dev's kharshit pictures, 4032x3024)."""
    h, w = side, side * 3 // 4
    cover = np.zeros((h, w), np.float32)
    height = int(h * rng.uniform(0.15, 0.25))

    def pen(a: np.ndarray) -> np.ndarray:
        return pen_line(a, height)

    def put(ink: np.ndarray, cy: int, cx: int) -> None:
        top, left = cy - ink.shape[0] // 2, cx - ink.shape[1] // 2
        t, l, b, r = max(top, 0), max(left, 0), min(top + ink.shape[0], h), min(left + ink.shape[1], w)
        if t < b and l < r:
            cover[t:b, l:r] = np.maximum(cover[t:b, l:r], ink[t - top:b - top, l - left:r - left])

    cy, cx = int(h * rng.uniform(0.42, 0.58)), int(w * rng.uniform(0.42, 0.58))
    put(pen(digit), cy, cx)
    spots = [(cy - int(1.55 * height), cx), (cy, cx - int(1.15 * height) - w // 3), (cy, cx + int(1.15 * height) + w // 3),
             (cy + int(1.55 * height), cx)]
    for a, (y, x) in zip(neighbours, [spots[i] for i in rng.permutation(4)]):
        # far enough out that the frame's edge cuts the neighbour: a fragment, not a second digit
        y = y - int(0.75 * h) * (y < cy) + int(0.75 * h) * (y > cy) + int(rng.uniform(-0.1, 0.1) * height)
        x = x - int(0.18 * w) * (x < cx) + int(0.18 * w) * (x > cx)
        put(pen(a), min(max(y, -height // 4), h + height // 4), min(max(x, -height // 4), w + height // 4))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    edge = h * rng.uniform(0.55, 0.8) + (xx - w / 2) * rng.uniform(-0.3, 0.3)
    shadow = 1.0 - rng.uniform(0.25, 0.45) / (1.0 + np.exp(-(yy - edge) / (0.04 * h)))
    light = shadow * (1.0 - 0.12 * ((xx / w - 0.5) ** 2 + (yy / h - 0.4) ** 2))
    paper = np.full((h, w), rng.uniform(195, 225), np.float32)
    for _ in range(int(rng.integers(0, 6))):  # a printed form on the back of the sheet, showing through
        if rng.random() < 0.5:
            r0 = int(rng.integers(0, h))
            paper[r0:r0 + 2] -= rng.uniform(6, 14)
        else:
            c0 = int(rng.integers(0, w))
            paper[:, c0:c0 + 2] -= rng.uniform(6, 14)
    tint = np.array([1.0, 1.0, 0.96], np.float32)
    rgb = (paper[..., None] * tint * (1 - cover[..., None]) + np.array([30, 32, 45], np.float32) * cover[..., None])
    return _as_saved(rgb * light[..., None] + rng.normal(0, 3, rgb.shape), 85 if jpeg else None)


def faint_pen_page(ink: int = 150, noise: float = 4.0) -> Image.Image:
    """A 900x1200 page shaded towards the bottom, with a 7 in a 2 px line of faint ink: a fraction of
    a pixel at the 200 px working size."""
    page = Image.new("L", (900, 1200), 200)
    ImageDraw.Draw(page).line([(380, 500), (520, 500), (430, 700)], fill=ink, width=2)
    shade = 1 - 0.35 / (1 + np.exp(-(np.arange(1200, dtype=np.float32)[:, None] - 800) / 50))
    rng = np.random.default_rng(0)
    return Image.fromarray(np.clip(np.asarray(page) * shade + rng.normal(0, noise, (1200, 900)), 0, 255).astype(np.uint8))


def scan_in_pieces(digit: np.ndarray) -> np.ndarray:
    """A 16x16 bilevel scan of an MNIST digit stretched to fill the box, as Semeion's are, with a blank
    row cutting off its top (a 5's flag, a pen that skipped), then cropped tight: pieces along the border."""
    ys, xs = np.nonzero(digit > 64)
    crop = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    a = (np.asarray(Image.fromarray(crop).resize((16, 16), Image.BILINEAR)) > 128).astype(np.uint8) * 255
    a[4] = 0
    ys, xs = np.nonzero(a)
    return a[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def marker_photo(digit: np.ndarray, rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """A photo of an MNIST digit drawn in thick marker (strokes a sixth of its size, as photos-dev's
    jeffkg pictures) on grey paper, 10 px from the edges; and the marker strokes alone (0..1)."""
    bold = np.asarray(Image.fromarray(digit).resize((280, 280), Image.BICUBIC).filter(ImageFilter.MaxFilter(45)),
                      np.float32) / 255
    photo = 170 - 150 * np.pad(bold, 10) + rng.normal(0, 6, (300, 300))
    return Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)), bold


# --------------------------------------------------------------------------------------------------
# MNIST itself


def test_mnist_test_set_passes_through_unchanged(mnist):
    """Already-framed MNIST digits come back bit for bit: re-framing could only blur them."""
    x, _ = mnist
    for a in x:
        out = to_mnist(Image.fromarray(a))
        assert out.dtype == np.uint8 and np.array_equal(out, a)


def test_mnist_passthrough_in_any_container(mnist):
    x, _ = mnist
    a = x[7]
    for image in (Image.fromarray(a).convert("RGB"), gray16(a.astype(np.uint16) * 257),
                  Image.fromarray(a.astype(np.float32))):
        assert np.array_equal(to_mnist(image), a), image.mode


def test_black_on_white_mnist_gives_the_same_digit(mnist):
    x, _ = mnist
    for a in x[:500]:
        assert np.array_equal(to_mnist(Image.fromarray(255 - a)), a)


def test_reframing_mnist_changes_it_little(mnist):
    """The full pipeline (not the passthrough) on a padded MNIST digit reproduces it closely."""
    x, _ = mnist
    for a in x[:50]:
        padded = np.pad(a, 30)
        out = to_mnist(Image.fromarray(padded))
        assert_mnist_framed(out)
        assert correlation(out, a) > 0.85


# --------------------------------------------------------------------------------------------------
# Photos and drawings


PHOTO_CASES = [  # (side, thickness, rotation): 60 px crops to 1600 px photos, thin to thick pens
    (60, 0.0, 0.0), (90, 0.2, -6.0), (150, -0.25, 5.0), (240, 0.0, 8.0), (400, 0.35, -8.0),
    (640, -0.3, 0.0), (900, 0.1, 4.0), (1600, -0.2, -4.0),
]


@pytest.mark.parametrize("side,thickness,rotate", PHOTO_CASES)
def test_photo_comes_out_framed_like_mnist(mnist, side, thickness, rotate):
    x, _ = mnist
    rng = np.random.default_rng(side)
    for i in rng.choice(len(x), 6, replace=False):
        photo = render_photo(x[i], rng, side=side, thickness=thickness, rotate=rotate)
        out = to_mnist(photo)
        assert_mnist_framed(out)
        assert correlation(out, x[i]) > (0.85 if rotate == 0 else 0.7), (i, correlation(out, x[i]))


def test_both_polarities_give_the_same_digit(mnist):
    x, _ = mnist
    rng = np.random.default_rng(1)
    for i in range(20):
        photo = render_photo(x[i], rng, side=300, jpeg=False).convert("L")
        dark_on_light = to_mnist(photo)
        light_on_dark = to_mnist(Image.fromarray(255 - np.asarray(photo)))
        assert correlation(dark_on_light, light_on_dark) > 0.97
        assert np.abs(dark_on_light.astype(int) - light_on_dark).mean() < 8


def test_screen_drawings_thin_and_thick(mnist):
    x, _ = mnist
    for i in range(10):
        for brush in (1, 9):
            canvas = drawing(x[i], brush=brush)
            for image in (Image.fromarray(canvas), Image.fromarray(255 - canvas)):
                out = to_mnist(image)
                assert_mnist_framed(out)
                assert correlation(out, x[i]) > (0.9 if brush == 1 else 0.8)


def test_specks_around_the_digit_are_ignored(mnist):
    x, _ = mnist
    canvas = 255 - drawing(x[3])
    rng = np.random.default_rng(3)
    for y, x0 in rng.integers(0, 270, (12, 2)):
        if canvas[max(0, y - 20):y + 20, max(0, x0 - 20):x0 + 20].min() == 255:  # keep clear of the digit
            canvas[y:y + 3, x0:x0 + 3] = 0
    clean = to_mnist(Image.fromarray(255 - drawing(x[3])))
    assert np.abs(to_mnist(Image.fromarray(canvas)).astype(int) - clean).max() <= 1


def edge_sharpness(a: np.ndarray) -> float:
    f = a.astype(np.float64) / a.max()
    return (np.abs(np.diff(f, axis=0)).sum() + np.abs(np.diff(f, axis=1)).sum()) / f.sum()


def test_crisp_ink_is_softened_inside_the_box(mnist, monkeypatch):
    """Binary ink comes out with soft edges like the training digits, still framed like MNIST."""
    x, _ = mnist
    canvases = [np.where(drawing(x[i]) > 127, 255, 0).astype(np.uint8) for i in range(20)]
    soft = [to_mnist(Image.fromarray(c)) for c in canvases]
    monkeypatch.setattr(P.frame, "SOFTEN", 0.0)
    crisp = [to_mnist(Image.fromarray(c)) for c in canvases]
    for s, c in zip(soft, crisp):
        assert_mnist_framed(s)
        assert bbox_side(s) <= 20
        assert edge_sharpness(s) < edge_sharpness(c)
        assert correlation(s, c) > 0.9  # the same digit (centring may move by a pixel)
    assert np.mean([edge_sharpness(s) for s in soft]) < 0.97 * np.mean([edge_sharpness(c) for c in crisp])


def test_ruled_and_squared_paper_lines_are_not_ink(mnist):
    """Lines of an exercise book run across the whole page; the digit written over them is what counts."""
    x, _ = mnist
    for i in range(6):
        clean = 255 - drawing(x[i])
        ref = to_mnist(Image.fromarray(clean))
        for width, squared in ((1, False), (2, False), (3, False), (1, True)):
            page = clean.copy()
            for r in range(0, page.shape[0], 28):
                page[r:r + width] = np.minimum(page[r:r + width], 90)
                if squared:
                    page[:, r:r + width] = np.minimum(page[:, r:r + width], 90)
            out = to_mnist(Image.fromarray(page))
            assert_mnist_framed(out)
            assert correlation(out, ref) > 0.9, (i, width, squared)


def test_dark_table_beside_the_sheet_is_not_the_digit(mnist):
    """A photo that catches the table along one side: the dark band touching the border is backdrop."""
    x, _ = mnist
    for i in range(6):
        clean = 255 - drawing(x[i])
        page = np.pad(clean, ((0, 0), (0, 60)), constant_values=255)
        page[:, -40:] = 40
        out = to_mnist(Image.fromarray(page))
        assert_mnist_framed(out)
        assert correlation(out, to_mnist(Image.fromarray(clean))) > 0.9, i


def test_broken_digit_keeps_its_pieces(mnist):
    """A 5 whose flag is lifted off, or a pen that skipped, is still one digit."""
    x, _ = mnist
    canvas = drawing(x[0])  # a 7
    rows = np.nonzero(canvas.any(axis=1))[0]
    cut = rows[0] + (rows[-1] - rows[0]) // 4
    canvas[cut:cut + 6] = 0  # a gap across the whole digit
    out = to_mnist(Image.fromarray(canvas))
    assert_mnist_framed(out)
    assert correlation(out, x[0]) > 0.75


def test_usps_and_semeion_scans_are_framed(datasets_dir):
    for name in ("usps", "semeion"):
        data = np.load(datasets_dir / name / f"{name}.npz")
        for a in data["x"][:40]:
            for image in (Image.fromarray(a), Image.fromarray(255 - a).resize((120, 120), Image.BILINEAR)):
                assert_mnist_framed(to_mnist(image))


def test_intermediate_pieces_for_a_multi_digit_reader(mnist):
    x, _ = mnist
    row = np.hstack([drawing(x[i], size=140) for i in range(3)])
    ink, mask = ink_mask(Image.fromarray(255 - row))
    assert ink.shape == mask.shape and ink.dtype == np.float32 and mask.dtype == bool
    assert 0.0 <= ink.min() and ink.max() <= 1.0
    labels, count = P.label(mask)
    comps = sorted((c for c in P.components(labels) if c.area > 20), key=lambda c: c.left)
    assert len(comps) == 3
    for c, i in zip(comps, range(3)):
        crop = np.where(labels[c.top:c.bottom, c.left:c.right] == c.label, ink[c.top:c.bottom, c.left:c.right], 0)
        out = frame_digit(crop)
        assert_mnist_framed(out)
        assert correlation(out, x[i]) > 0.8


def test_label_matches_a_flood_fill():
    rng = np.random.default_rng(0)
    for _ in range(50):
        mask = rng.random((rng.integers(1, 30), rng.integers(1, 30))) < rng.random()
        labels, count = P.label(mask)
        assert (labels > 0).sum() == mask.sum() and np.array_equal(labels > 0, mask)
        # 8-neighbours share a label; the number of labels is the number of flood fills.
        for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
            a = labels[max(0, -dy):labels.shape[0] - max(0, dy), max(0, -dx):labels.shape[1] - max(0, dx)]
            b = labels[max(0, dy):, max(0, dx):][:a.shape[0], :a.shape[1]] if dx >= 0 else labels[dy:, :dx]
            both = (a > 0) & (b > 0)
            assert np.array_equal(a[both], b[both])
        seen, fills = np.zeros(mask.shape, bool), 0
        for y, x0 in zip(*np.nonzero(mask)):
            if seen[y, x0]:
                continue
            fills += 1
            stack = [(y, x0)]
            seen[y, x0] = True
            while stack:
                cy, cx = stack.pop()
                for ny in range(max(cy - 1, 0), min(cy + 2, mask.shape[0])):
                    for nx in range(max(cx - 1, 0), min(cx + 2, mask.shape[1])):
                        if mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
        assert count == fills


def sorted_window_median(a: np.ndarray, k: int, mode: str = "edge") -> np.ndarray:
    """The median filter by its definition: each window (padded as numpy pads) sorted, its middle value."""
    r = k // 2
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(a, r, mode=mode), (k, k)).reshape(a.shape + (k * k,))
    return np.sort(windows, axis=-1)[..., k * k // 2]


def median_cases() -> list[tuple[np.ndarray, int, str]]:
    """(plane, k, mode) for the median filter: two or five levels (ties everywhere), gray levels, any
    float, fractions and negatives; windows from 3 px to past the plane's edges (replicated) or to just
    under its side (mirrored); and the pipeline's own: a pad drawing's polarity sample, 24 px backgrounds."""
    rng = np.random.default_rng(0)
    cases = []
    for i in range(80):
        h, w = (int(n) for n in rng.integers(2, 30, 2))
        levels = (2, 5, 256, None)[i % 4]
        a = rng.integers(0, levels, (h, w)) if levels else rng.uniform(0, 255, (h, w))
        a = (a * (0.37 if i % 3 == 0 else 1) - (100 if i % 5 == 0 else 0)).astype(np.float32)
        mode = ("edge", "reflect")[i % 2]
        widest = max(h, w) + 1 if mode == "edge" else min(h, w) - 1  # the window's reach past its centre
        cases.append((a, 2 * int(rng.integers(1, widest + 1)) + 1, mode))
    pad = subsample(P.working_gray(render_strokes(ORDINARY[8])))
    return cases + [(pad, P.ink.LOCAL_PAPER, "edge"), (255 - pad, P.ink.LOCAL_PAPER, "edge"),
                    (rng.uniform(0, 255, (24, 24)).astype(np.float32), 13, "reflect"),
                    (rng.uniform(0, 255, (19, 24)).round().astype(np.float32), 9, "reflect")]


def test_median_filter_is_each_windows_middle_value():
    """Partitioning ranks, not values, picks the same median as sorting each window, to the bit: int16
    ranks, int32 ones (over 32768 distinct values), and other dtypes than float32 kept as they are."""
    rng = np.random.default_rng(1)
    many = rng.uniform(-1000, 1000, (190, 190)).astype(np.float32)
    assert np.unique(many).size > 1 << 15
    others = [(rng.integers(0, 256, (17, 23)).astype(np.uint8), 5, "edge"),
              (rng.uniform(-1, 1, (23, 17)) / 3, 7, "reflect")]  # float64 thirds: float32 would round them
    for a, k, mode in median_cases() + [(many, 3, "edge"), (many, 5, "reflect")] + others:
        out = median_filter(a, k, mode)
        assert out.dtype == a.dtype and np.array_equal(out, sorted_window_median(a, k, mode)), (a.shape, k, mode)


def eager_page_strokes(rough: np.ndarray, side: int) -> float | None:
    """`ink._page_strokes` as it was first written: the strokes measured whether or not it is a page."""
    thin = P.ink._stroke_width(rough, side // 4)
    return thin if rough.mean() < 0.1 and int(3 * thin) + 1 <= side // 4 else None


def test_the_fast_median_changes_no_output(mnist, monkeypatch):
    """Pad drawings, and the shadowed photos whose polarity and background the medians decide, give the
    same polarity, background-removed contrast and 28x28 with every median taken by sorting each window
    and a page's strokes always measured."""
    x, _ = mnist
    images = [render_strokes(strokes) for strokes in ORDINARY.values()]
    images += [load_image(render(x[i], "edge", i)[1]) for i in SHADOWED_OVER_HALF[:2]]
    images += [load_image(render(x[i], kind, i)[1]) for kind, i in SHADOW_EDGES]

    def outputs(image: Image.Image) -> tuple:
        found = P.find_ink(P.working_gray(image))
        return found.dark, found.contrast, to_mnist(image)

    fast = [outputs(image) for image in images]
    monkeypatch.setattr(P.ink, "median_filter", sorted_window_median)
    monkeypatch.setattr(P.ink, "_page_strokes", eager_page_strokes)
    for i, (image, (dark, contrast, digit)) in enumerate(zip(images, fast)):
        again = outputs(image)
        assert again[0] == dark and np.array_equal(again[1], contrast) and np.array_equal(again[2], digit), f"image {i}"


# --------------------------------------------------------------------------------------------------
# Tight crops and whole pages


@pytest.mark.parametrize("scale, dark", [(1, False), (4, True)], ids=["16x16", "64x64 dark on light"])
def test_a_tight_crop_reads_like_the_same_digit_with_a_margin(datasets_dir, scale, dark):
    """Ink touching the border (a phone's crop tool, a table cell) must not change the digit: the
    same USPS digits with 0, 2 and 8 px of paper around them give the same 28x28, up to resampling,
    which moves strokes by a fraction of a pixel (hence a blurred correlation, not equality)."""
    digits = np.load(datasets_dir / "usps" / "usps.npz")["x"][:100]
    same = []
    for a in digits:
        a = np.asarray(Image.fromarray(a).resize((16 * scale, 16 * scale), Image.BICUBIC))
        a = 255 - a if dark else a
        outs = [to_mnist(Image.fromarray(np.pad(a, margin, constant_values=a.max() if dark else 0)))
                for margin in (0, 2, 8)]
        for out in outs:
            assert_mnist_framed(out)
        same += [correlation(outs[0], out) for out in outs[1:]]
    assert min(same) > 0.8 and np.mean(same) > 0.95, (min(same), np.mean(same))


def test_a_tight_crop_in_pieces_keeps_every_piece(mnist):
    """The pieces of a tightly cropped digit lie along the border like a backdrop would; as thin as
    the other strokes, they are the digit's: it reads like the same scan with a margin. (Two of the
    30 turn into blobs at 16x16 whose polarity is a toss-up, hence a share, not all.)"""
    x, _ = mnist
    same = np.array([correlation(to_mnist(Image.fromarray(a)), to_mnist(Image.fromarray(np.pad(a, 4))))
                     for a in map(scan_in_pieces, x[:30])])
    assert np.mean(same > 0.9) >= 0.9, np.round(same, 2)


def test_a_faint_thin_line_in_a_big_photo_is_found_at_a_second_look(monkeypatch):
    page = faint_pen_page()
    clean = to_mnist(faint_pen_page(ink=0, noise=0))
    out = to_mnist(page)
    assert_mnist_framed(out)
    assert correlation(out, clean) > 0.9
    monkeypatch.setattr(P.frame, "FINE_SIDE", 10**6)  # no second look: it fades into the paper
    with pytest.raises(NoDigit):
        to_mnist(page)


def test_a_whole_page_photo_is_read(mnist):
    """An uncropped phone photo: the digit small and thin near the centre, a shadow across the sheet,
    pieces of the neighbouring digits cut off by the frame's edges (photos-dev's kharshit pictures)."""
    x, _ = mnist
    rng = np.random.default_rng(13)
    for i in range(6):
        page = render_page(x[i], [x[20 + i], x[40 + i], x[60 + i]], rng)
        out = to_mnist(page)
        assert_mnist_framed(out)
        # the same pen line alone on clean paper, at the size the page's digit has at working resolution
        alone = np.pad(255 - 225 * pen_line(x[i], 40), 20, constant_values=255).astype(np.uint8)
        assert correlation(out, to_mnist(Image.fromarray(alone))) > 0.85, i


def test_a_shadow_the_digit_touches_is_not_ink(mnist):
    """A page photo with no neighbours in the frame, the digit's foot reaching into a shadow across the
    sheet: digit and shadow make one blob at the background's scale, which must still see the shadow
    as broad backdrop, not a stroke (the first page here came out as the shadow's outline)."""
    x, _ = mnist
    for i in range(6):
        out = to_mnist(render_page(x[i], [], np.random.default_rng(13 + i), jpeg=False))
        alone = np.pad(255 - 225 * pen_line(x[i], 40), 20, constant_values=255).astype(np.uint8)
        assert correlation(out, to_mnist(Image.fromarray(alone))) > 0.85, i


SHADOWED_OVER_HALF = (3, 8, 15, 17)
"""Seeds of tests/shadowed.py's `edge` photos of MNIST test digits 3, 8, 15, 17 whose shadow covers most
of the page: the median gray is the shadow's, and the lit paper was taken for bright ink."""


@pytest.mark.parametrize("i", SHADOWED_OVER_HALF)
def test_a_shadow_over_most_of_the_page_is_not_the_paper(mnist, i):
    """The ink is dark against the paper's local level, and the digit comes out as it does unshadowed."""
    x, _ = mnist
    plain, shaded = (load_image(data) for data in render(x[i], "edge", i))
    assert P.ink_is_dark(P.working_gray(shaded))
    assert correlation(to_mnist(shaded), to_mnist(plain)) > 0.8


SHADOW_EDGES = (("edge", 13), ("edge", 20), ("edge", 22), ("side", 25))
"""tests/shadowed.py photos (kind, seed) of MNIST test digit `seed` whose shadow's hard edge, or the wedge of
shadow it cuts off at the border, was taken for ink: too bold a stroke for the opening, or too narrow."""


@pytest.mark.parametrize("kind, i", SHADOW_EDGES)
def test_a_shadows_edge_is_not_ink(mnist, kind, i):
    """The background follows the paper across the shadow's edge: the digit comes out as it does unshadowed."""
    x, _ = mnist
    plain, shaded = (load_image(data) for data in render(x[i], kind, i))
    assert correlation(to_mnist(shaded), to_mnist(plain)) > 0.8


@pytest.mark.parametrize("family", ["dot", "dash"])
def test_a_dot_or_a_dash_is_no_digit(family):
    """Shapes no digit has are "no digit" before the model runs (it read a dot as 0 at 99.9%); a dash
    slanted and thick enough to be a quarter as tall as it is wide goes on to the model."""
    rng = np.random.default_rng(3)
    refused = []
    for _ in range(10):
        try:
            to_mnist(load_image(photograph(shape(family, rng), rng)))
            refused.append(False)
        except NoDigit as e:
            assert family in str(e)
            refused.append(True)
    assert sum(refused) >= 7, refused


def test_thin_ones_and_flat_digits_are_still_digits(mnist):
    """The shape rules spare every 1 (thin and tall) and every digit of the first 1,000, padded so they
    go through the pipeline, and a flat 2 squashed into a box."""
    x, y = mnist
    for a in [*x[y == 1][:100], *x[:1000]]:
        to_mnist(Image.fromarray(np.pad(a, 10)))
    flat = np.asarray(Image.fromarray(x[1]).resize((56, 20), Image.BILINEAR))  # a 2, 0.36 as tall as wide
    assert_mnist_framed(to_mnist(Image.fromarray(np.pad(flat, 12))))


def test_a_bold_marker_digit_is_ink_not_backdrop(mnist):
    """Marker strokes are broad at the background's scale, as a shadow or a table is; but those come in
    from outside the frame, and a digit with paper all round it is not backdrop (the old rule took
    such a 2 for one and opened its strokes away, or found no digit at all)."""
    x, _ = mnist
    rng = np.random.default_rng(0)
    for i in range(12):
        photo, strokes = marker_photo(x[i], rng)
        assert correlation(to_mnist(photo), frame_digit(strokes)) > 0.95, i


# --------------------------------------------------------------------------------------------------
# Modes and orientation


def _mode_variants(canvas: np.ndarray) -> dict[str, Image.Image]:
    """The same black-on-white digit in every Pillow mode a user might hand us."""
    light = Image.fromarray(255 - canvas)
    alpha = canvas  # strokes opaque, background fully transparent
    rgba_black_strokes = np.zeros(canvas.shape + (4,), np.uint8)
    rgba_black_strokes[..., 3] = alpha
    rgba_white_strokes = np.full(canvas.shape + (4,), 255, np.uint8)
    rgba_white_strokes[..., 3] = alpha
    palette = light.convert("P")
    palette_transparent = light.convert("RGB").quantize(16)
    palette_transparent.info["transparency"] = int(np.asarray(palette_transparent)[0, 0])
    return {
        "L": light,
        "RGB": light.convert("RGB"),
        "RGBA opaque": light.convert("RGBA"),
        "RGBA black strokes on transparent": Image.fromarray(rgba_black_strokes, "RGBA"),
        "RGBA white strokes on transparent": Image.fromarray(rgba_white_strokes, "RGBA"),
        "LA": Image.merge("LA", (Image.new("L", light.size, 0), Image.fromarray(alpha))),
        "La": Image.merge("LA", (Image.new("L", light.size, 0), Image.fromarray(alpha))).convert("La"),
        "RGBa": Image.fromarray(rgba_black_strokes, "RGBA").convert("RGBa"),
        "P": palette,
        "P with transparency": palette_transparent,
        "PA": Image.fromarray(rgba_black_strokes, "RGBA").convert("PA"),
        "I;16": gray16((255 - canvas).astype(np.uint16) * 257),
        "I;16B": Image.frombytes("I;16B", light.size, ((255 - canvas).astype(np.uint16) * 257).astype(">u2").tobytes()),
        "I": Image.fromarray((255 - canvas).astype(np.int32) * 257),
        "F": Image.fromarray((255 - canvas).astype(np.float32) / 255.0),
        "CMYK": light.convert("CMYK"),
        "YCbCr": light.convert("YCbCr"),
        "HSV": light.convert("RGB").convert("HSV"),
        "LAB": light.convert("RGB").convert("LAB"),
        "1": light.convert("1", dither=Image.Dither.NONE),
    }


def test_every_pillow_mode_is_accepted(mnist):
    x, _ = mnist
    canvas = drawing(x[1], brush=5)
    reference = to_mnist(Image.fromarray(255 - canvas))
    variants = _mode_variants(canvas)
    for name, image in variants.items():
        out = to_mnist(image)
        assert out.shape == (28, 28) and out.dtype == np.uint8, name
        assert correlation(out, reference) > 0.9, name


def test_transparent_background_is_never_ink():
    """A drawing app's export: strokes with alpha, the rest transparent (and black in RGB)."""
    rgba = np.zeros((200, 200, 4), np.uint8)
    rgba[40:160, 95:105, 3] = 255  # a "1", black strokes, on transparent black
    out = to_mnist(Image.fromarray(rgba, "RGBA"))
    assert_mnist_framed(out)
    assert bbox_side(out) == 20 and out[:, :8].max() == 0  # a thin vertical bar, not a filled square


def test_exif_orientation_is_honoured(mnist, tmp_path):
    x, _ = mnist
    upright = Image.fromarray(255 - drawing(x[0]))  # a 7: rotations of it are not 7s
    expected = to_mnist(upright)
    # EXIF orientation 6 means "rotate 90 degrees clockwise to display": store it rotated back.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    stored.convert("RGB").save(path, quality=95, exif=exif.tobytes())
    loaded = load_image(path)
    assert loaded.size == upright.size
    assert correlation(to_mnist(loaded), expected) > 0.95
    with Image.open(path) as lazy:  # to_mnist honours the tag too, however the image was opened
        assert correlation(to_mnist(lazy), expected) > 0.95
    assert correlation(to_mnist(stored), expected) < 0.8  # the tag made the difference


# --------------------------------------------------------------------------------------------------
# No digit


def _noise_images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(0)
    images = {}
    for side in (28, 64, 300, 640):
        images[f"white {side}"] = Image.new("L", (side, side), 255)
        images[f"black {side}"] = Image.new("L", (side, side), 0)
        images[f"grey RGB {side}"] = Image.new("RGB", (side, side), (120, 130, 140))
        for sigma in (5, 20, 60):
            images[f"gaussian {sigma} {side}"] = Image.fromarray(
                np.clip(128 + rng.normal(0, sigma, (side, side)), 0, 255).astype(np.uint8))
        images[f"uniform {side}"] = Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))
        yy, xx = np.mgrid[0:side, 0:side]
        images[f"gradient {side}"] = Image.fromarray((40 + 180 * xx / side).astype(np.uint8))
        images[f"vignetted paper {side}"] = Image.fromarray(
            (235 - 150 * ((xx / side - 0.4) ** 2 + (yy / side - 0.5) ** 2)).astype(np.uint8))
    images["transparent"] = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    buf = io.BytesIO()
    images["gaussian 20 300"].save(buf, "JPEG", quality=50)
    images["noise as JPEG"] = Image.open(io.BytesIO(buf.getvalue()))
    return images


@pytest.mark.parametrize("name", list(_noise_images()))
def test_blank_and_noise_images_are_no_digit(name):
    image = _noise_images()[name]
    with pytest.raises(NoDigit):
        to_mnist(image)


def test_no_digit_is_a_user_error_with_a_message():
    with pytest.raises(UserError, match="no digit"):
        to_mnist(Image.new("L", (50, 50), 200))


# --------------------------------------------------------------------------------------------------
# Bad files


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, depth: int = 8, colour: int = 0, idat: bytes | None = None) -> bytes:
    """A PNG with this header (gray, or RGB with colour=2); by default it holds a few rows only: a
    decompression bomb's calling card."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    idat = zlib.compress(b"\0" * (width + 1) * 16) if idat is None else idat
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _png16(side: int) -> bytes:
    """A 16-bit gray PNG, side x side, of bright paper with a dark bar: a few hundred KB at most."""
    paper, ink = struct.pack(">H", 60000), struct.pack(">H", 1000)
    plain = b"\0" + paper * side
    barred = b"\0" + paper * (side // 2 - 50) + ink * 100 + paper * (side // 2 - 50)
    z = zlib.compressobj()
    rows = b"".join(z.compress(barred if side // 4 <= y < 3 * side // 4 else plain) for y in range(side))
    return _png(side, side, depth=16, idat=rows + z.flush())


def test_bad_files_raise_user_error_naming_the_file(tmp_path):
    good = io.BytesIO()
    Image.new("L", (300, 300), 128).save(good, "PNG")
    good_jpeg = io.BytesIO()
    Image.new("RGB", (300, 300), (90, 90, 90)).save(good_jpeg, "JPEG")
    files = {
        "missing.png": None,
        "empty.png": b"",
        "text.jpg": b"this is not an image\n" * 20,
        "truncated.png": good.getvalue()[: len(good.getvalue()) // 2],
        "truncated.jpg": good_jpeg.getvalue()[: len(good_jpeg.getvalue()) // 2],
        "header-only.png": good.getvalue()[:40],
        "bomb.png": _png(20_000, 20_000),
    }
    for name, data in files.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(UserError) as err:
            load_image(path)
        message = str(err.value)
        assert name in message and "\n" not in message, message
    with pytest.raises(UserError, match="folder"):
        load_image(tmp_path)


def test_a_bomb_is_refused_by_either_guard_alone(tmp_path, monkeypatch):
    """The byte budget (from the header) and Pillow's own pixel guard each refuse a bomb without the other."""
    path = tmp_path / "bomb.png"
    path.write_bytes(_png(20_000, 20_000))
    with monkeypatch.context() as m:
        m.setattr(P.load, "DECODE_BUDGET", float("inf"))
        with pytest.raises(UserError, match="bomb.png: image too large, refused as a possible decompression bomb"):
            load_image(path)
    with monkeypatch.context() as m:
        m.setattr(Image, "MAX_IMAGE_PIXELS", None)
        with pytest.raises(UserError, match=r"bomb.png: 20000x20000 L image is too large to decode \(382 MiB, at most 48"):
            load_image(path)
    assert Image.MAX_IMAGE_PIXELS == P.MAX_PIXELS


def test_the_budget_counts_bytes_per_pixel(tmp_path):
    """6000x6000 is within the budget in 8-bit gray, not in 16-bit gray or RGB (Pillow keeps RGB in 4 bytes)."""
    for depth, colour, mode in ((8, 0, "L"), (16, 0, "I;16"), (8, 2, "RGB")):
        path = tmp_path / f"{mode}.png"
        path.write_bytes(_png(6000, 6000, depth, colour))
        try:
            load_image(path)
            message = "decoded"
        except UserError as e:
            message = str(e)
        assert ("too large to decode" in message) == (mode != "L"), message


def test_the_budget_counts_pillows_row_pointers(tmp_path):
    """A PNG 1 pixel wide and 6 million rows tall holds 6 MB of pixels but 48 MB of row pointers: refused
    from its header (a 45-million-row one, 87 KB, took a process to 455 MB)."""
    path = tmp_path / "tall.png"
    path.write_bytes(_png(1, 6_000_000, idat=zlib.compress(b"\0\0" * 6_000_000)))
    with pytest.raises(UserError, match=r"tall.png: 1x6000000 L image is too large to decode \(51 MiB"):
        load_image(path)


def test_jpeg_counts_at_its_drafted_size(tmp_path, monkeypatch):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (3000, 2000), (200, 200, 200)).save(path, quality=80)
    monkeypatch.setattr(P.load, "DECODE_BUDGET", 8 * 2**20)  # 3000x2000 RGB is 23 MiB, drafted at 1/2 6 MiB
    assert max(load_image(path).size) == 1500
    with pytest.raises(UserError, match="too large to decode"):
        load_image(path, max_side=None)


def test_a_16_bit_8000x8000_png_is_refused_before_decoding(tmp_path):
    """The issue's 141 KB upload (128 MB decoded) once took a process to 1.25 GB; a 4000x4000 one that
    fits the budget is read band by band, with no full-size float copies (it took 336 MB)."""
    for side in (8000, 4000):
        (tmp_path / f"{side}.png").write_bytes(_png16(side))
    code = """
import sys
from edge.errors import UserError
from edge.preprocess import load_image, to_mnist
def peak_mib():
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) // 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak (VmHWM) to what the process holds now
before = peak_mib()
try:
    to_mnist(load_image(sys.argv[1]))
    answer = "read"
except UserError as e:
    answer = str(e)
print(answer, peak_mib() - before)
"""
    for side, expected, most_mib in ((8000, "too large to decode", 5), (4000, "read", 64)):
        result = subprocess.run([sys.executable, "-c", code, str(tmp_path / f"{side}.png")], capture_output=True,
                                text=True, cwd=Path(__file__).resolve().parents[1], check=True)
        answer, grew = result.stdout.rsplit(" ", 1)
        assert expected in answer and int(grew) < most_mib, result.stdout


@pytest.mark.parametrize("kind", ["EPS", "PDF"])
def test_only_photo_and_drawing_formats_are_read(tmp_path, kind):
    """EPS would be rendered by Ghostscript, were it installed: refused like any format off the list."""
    path = tmp_path / f"digit.{kind.lower()}"
    Image.new("L", (60, 60), 255).save(path, kind)
    for source in (path, path.read_bytes()):
        with pytest.raises(UserError) as err:
            load_image(source, name=path.name)
        assert str(err.value) == f"{path if source is path else path.name}: not a PNG, JPEG, WEBP, GIF, BMP or TIFF image"


def test_load_image_reads_good_files_and_shrinks_big_ones(tmp_path):
    """A long side from LOAD_SIDE to under twice it: JPEGs by DCT scaling, others box-reduced in their own mode."""
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (3000, 2000), (200, 200, 200)).save(path, quality=80)
    image = load_image(path)
    assert 1024 <= max(image.size) < 2048
    assert load_image(path, max_side=None).size == (3000, 2000)
    for mode in ("RGBA", "P", "I;16"):
        path = tmp_path / f"{mode}.png"
        Image.new("L", (3000, 2000), 200).convert(mode).save(path)
        image = load_image(path)
        assert image.size == (1500, 1000) and image.mode == {"P": "RGB", "I;16": "I"}.get(mode, mode), (mode, image)


# --------------------------------------------------------------------------------------------------
# Anything at all


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(1, 48), width=st.integers(1, 48),
    mode=st.sampled_from(["L", "RGB", "RGBA", "LA", "I;16", "I", "F", "1", "P", "CMYK"]),
    seed=st.integers(0, 2**32 - 1), style=st.sampled_from(["noise", "blocks", "constant", "sparse"]),
)
def test_any_small_image_gives_a_digit_or_no_digit(height, width, mode, seed, style):
    rng = np.random.default_rng(seed)
    if style == "noise":
        a = rng.integers(0, 256, (height, width, 4))
    elif style == "blocks":
        a = np.kron(rng.integers(0, 2, (height // 4 + 1, width // 4 + 1, 4)) * 255, np.ones((4, 4, 1)))[:height, :width]
    elif style == "constant":
        a = np.full((height, width, 4), rng.integers(0, 256))
    else:
        a = np.where(rng.random((height, width, 4)) < 0.05, 255, 0)
    a = a.astype(np.uint8)
    base = Image.fromarray(a, "RGBA")
    if mode == "I;16":
        image = gray16(a[..., 0].astype(np.uint16) * 257)
    elif mode == "I":
        image = Image.fromarray(a[..., 0].astype(np.int32) * 1000 - 5000)
    elif mode == "F":
        image = Image.fromarray(a[..., 0].astype(np.float32) * np.float32(rng.uniform(-3, 3)))
    else:
        image = base.convert(mode)
    try:
        out = to_mnist(image)
    except NoDigit:
        return
    assert out.shape == (28, 28) and out.dtype == np.uint8


def test_frame_digit_rejects_empty_and_odd_input():
    with pytest.raises(NoDigit):
        frame_digit(np.zeros((10, 10)))
    with pytest.raises(ValueError):
        frame_digit(np.zeros((3, 3, 3)))
    out = frame_digit(np.ones((1, 1)))  # a dot is still framed somehow, never a crash
    assert out.shape == (28, 28)


# --------------------------------------------------------------------------------------------------
# Speed


def test_a_camera_frame_takes_milliseconds_of_cpu(mnist):
    """The thread's own CPU time, which other jobs on a busy machine barely change (wall time flaked):
    the target is 3 ms (bench/edge.py measures it); 20 ms only catches a pathological regression."""
    x, _ = mnist
    frame = render_photo(x[0], np.random.default_rng(0), side=480, jpeg=False).resize((640, 480))
    to_mnist(frame)
    times = []
    for _ in range(15):
        start = time.thread_time()
        to_mnist(frame)
        times.append(time.thread_time() - start)
    assert np.median(times) < 0.02
