"""Loading: an image file or its bytes -> a decoded Pillow image -> a float32 gray array.

The first stage of the pipeline (load -> ink -> frame). Everything about files, formats, sizes and
Pillow's many image modes stays here, so the later stages see one thing: gray levels 0..255.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps

from edge.errors import UserError

DECODE_BUDGET = 48 * 2**20
"""Bytes a decoded image may hold, from its header: width x height x Pillow's bytes per pixel, plus
the pointer Pillow keeps per row (JPEGs at their drafted size). 48 MiB takes a 12 MP photo in any
format (4032x3024 RGB: 46.5 MiB, as Pillow keeps RGB in 4 bytes) and refuses a 16-bit 8000x8000 PNG (122 MiB); two decodes at once then add
about 120 MiB to a server's 60 MiB."""
MAX_PIXELS = 2**28
"""Pillow's own bomb guard, behind the budget (pixels any header may claim): a 200 MP phone's JPEG
still passes, as it is decoded at 1/8 scale."""
FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
"""What phones, drawing apps and scanners produce; Pillow's other readers (EPS through Ghostscript,
and many rarely audited ones) never see an upload. iPhones' MPO photos open through JPEG's reader."""
SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
"""File names of those formats: what a folder given to `predict`, `evaluate` or `teach` is read for."""
LOAD_SIDE = 1024
"""`load_image` shrinks to a long side of at least this, under twice it (JPEGs by DCT scaling)."""
ROW_POINTER = 8
"""Bytes of Pillow's pointer to each row: an 87 KB PNG 1 pixel wide and 45 million rows tall holds
45 MB of pixels but 360 MB of row pointers."""
BAND_BYTES = 2**22
"""Shrinking converts and reduces this many bytes of rows at a time (`_shrink`)."""

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def load_image(source: str | os.PathLike | bytes, *, max_side: int | None = LOAD_SIDE,
               name: str = "upload") -> Image.Image:
    """Open and fully decode an image file (or its bytes, called `name` in errors), EXIF applied.

    Any failure is a UserError. Decoding here (not lazily later) is what catches truncated files.
    Only `FORMATS` are read, and only within `DECODE_BUDGET`, checked from the header before any
    pixel is decoded. Images are shrunk to a long side between `max_side` and twice that (None: full
    size): JPEGs are decoded at that DCT scale, which makes 12 MP photos cheap, and others box-reduced
    band by band. Bytes are decoded in memory: a server never writes uploads to disk.
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
            with Image.open(fp, formats=FORMATS) as im:
                w, h = im.size
                if max_side and im.format in ("JPEG", "MPO") and max(w, h) > max_side:
                    scale = max(w, h) / max_side
                    im.draft(im.mode, (math.ceil(w / scale), math.ceil(h / scale)))
                _check_budget(im, path)
                im.load()
                orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
                factor = max(im.size) // max_side if max_side else 1
                image = _shrink(im, factor, _reducible) if factor > 1 else im
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UserError(f"{path}: image too large, refused as a possible decompression bomb ({exc})") from None
    except Image.UnidentifiedImageError:
        raise UserError(f"{path}: not a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} image") from None
    except MemoryError:
        raise UserError(f"{path}: image too large to decode in memory") from None
    except Exception as exc:  # noqa: BLE001  Pillow's decoders raise many types on corrupt data
        raise UserError(f"{path}: unreadable or truncated image ({type(exc).__name__}: {exc})".replace("\n", " ")) from None
    if image.width == 0 or image.height == 0:
        raise UserError(f"{path}: image has no pixels")
    return _upright(image, orientation)


def _check_budget(image: Image.Image, path: str | Path) -> None:
    """UserError unless decoding `image` (opened, not loaded) stays within `DECODE_BUDGET` bytes."""
    w, h = image.size
    need = h * (w * _bytes_per_pixel(image.mode) + ROW_POINTER)
    if need > DECODE_BUDGET:
        raise UserError(f"{path}: {w}x{h} {image.mode} image is too large to decode "
                        f"({need / 2**20:.0f} MiB, at most {DECODE_BUDGET / 2**20:.0f} MiB)")


def _bytes_per_pixel(mode: str) -> int:
    """What Pillow stores per pixel: 1 for 1, L and P; 2 for 16-bit; 4 for the rest (RGB and LA too)."""
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def to_gray(image: Image.Image, max_side: int | None = None) -> np.ndarray:
    """Any Pillow image -> float32 gray array in 0..255, EXIF-rotated, alpha composited.

    Transparent areas become the colour that contrasts with the visible strokes (a drawing app's
    strokes on nothing), or the paper's own tone when most of the image is opaque (a cut-out), so
    transparency is never read as ink. `max_side` box-downscales first, band by band in the image's
    own gray or gray+alpha mode, so only the image itself is ever held at full size; float work
    starts at the working size.
    """
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    factor = math.ceil(max(image.size) / max_side) if max_side else 1
    gray = _upright(_shrink(image, factor, _gray), orientation)
    if gray.mode in ("I", "F"):
        return _scale_wide(np.asarray(gray))
    if gray.mode == "LA":
        la = np.asarray(gray, dtype=np.float32)
        return _composite(la[..., 0], la[..., 1] / 255.0)
    return np.asarray(gray, dtype=np.float32)


def _reducible(image: Image.Image) -> Image.Image:
    """The same pixels in a mode Pillow's `reduce` can average (palettes and bilevel expanded, 16-bit widened)."""
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode == "PA":
        return image.convert("RGBA")
    if image.mode == "1":
        return image.convert("L")
    if image.mode.startswith("I;16"):
        return image.convert("I")
    return image


def _gray(image: Image.Image) -> Image.Image:
    """L, or LA where there is alpha (premultiplied alpha undone); 32-bit and float images stay as they are."""
    image = _reducible(image)
    if image.mode in ("I", "F"):
        return image
    if image.mode == "RGBa":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La"):
        return image.convert("LA")
    try:
        return image.convert("L")
    except (ValueError, OSError):
        return image.convert("RGB").convert("L")


def _shrink(image: Image.Image, factor: int, convert) -> Image.Image:
    """`convert(image).reduce(factor)`, done over bands of rows so only one band is converted at a time.

    The result is the same, as `reduce`'s blocks line up with the bands, but a 12 MP RGBA photo no
    longer needs a second full-size copy (Pillow premultiplies alpha into one before reducing).
    Integer `reduce` is an exact box filter (clean anti-aliasing) and several times faster than a
    resampling resize.
    """
    if factor <= 1:
        return convert(image)
    w, h = image.size
    rows = factor * max(1, BAND_BYTES // (4 * w * factor))
    out = None
    for top in range(0, h, rows):
        band = convert(image.crop((0, top, w, min(top + rows, h)))).reduce(factor)
        if out is None:
            out = Image.new(band.mode, (math.ceil(w / factor), math.ceil(h / factor)))
        out.paste(band, (0, top // factor))
    return out


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    """`image` turned as EXIF `orientation` says, by Pillow's own table (for a copy that lost its EXIF)."""
    if orientation == 1:
        return image
    image.getexif()[ExifTags.Base.Orientation] = orientation
    return ImageOps.exif_transpose(image)


def _scale_wide(a: np.ndarray) -> np.ndarray:
    """16-bit, 32-bit and float pixels -> 0..255, by the range their type suggests.

    Floats within 0..1 are fractions; integers within 0..255 are already 8-bit, within 0..65535
    16-bit; binary 0/1 images and anything else (negative, huge) are stretched min-max.
    """
    is_float = np.issubdtype(a.dtype, np.floating)
    a = np.asarray(a, dtype=np.float32)
    a = np.where(np.isfinite(a), a, np.float32(0))
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo >= 0 and is_float and hi <= 1.0:
        return a * np.float32(255)
    if lo >= 0 and 1.0 < hi <= 255:
        return a
    if lo >= 0 and 255 < hi <= 65535 and not is_float:
        return a / np.float32(257)
    return (a - np.float32(lo)) * np.float32(255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)


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
