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
from PIL import Image, ImageOps

from edge.errors import UserError

MAX_PIXELS = 64_000_000
"""Refuse larger images (decompression bombs): 8000x8000 still passes, and so does a 50 MP phone."""
LOAD_SIDE = 1024
"""`load_image` asks JPEG decoders for at least this long a side (DCT scaling: fast and clean)."""

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


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
