"""Labelled digit images: a folder of your own digits (`DIR/<digit>/*` or `DIR/<digit>_*.png`), framed
by `edge.preprocess` exactly as `predict` frames them. Evaluation scores such a folder; teaching
adapts a model to it. numpy and Pillow only: this runs on the device.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from edge.errors import UserError
from edge.preprocess import SIZE, SUFFIXES, NoDigit, load_image, to_mnist


@dataclass
class Labelled:
    """Digits framed for a model, with their labels; `found[i]` is False where no digit was found."""

    source: str
    pixels: np.ndarray  # (n, 28, 28) uint8, zeros where no digit was found
    labels: np.ndarray  # (n,) int64
    found: np.ndarray  # (n,) bool
    names: list[str]  # where each image came from: a file, or "MNIST test #i"
    skipped: list[str] = field(default_factory=list)  # "<file>: why it was left out"
    preprocess_ms: np.ndarray | None = None  # per image; None when images came MNIST-framed

    def __len__(self) -> int:
        return len(self.labels)


def frame(image: Image.Image) -> np.ndarray | None:
    """`predict`'s framing of one image: a 28x28 digit, or None when there is no digit."""
    try:
        return to_mnist(image)
    except NoDigit:
        return None



def labelled_files(folder: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(file, digit) pairs from `folder`, and one message per entry that is not a labelled image."""
    files: list[tuple[Path, int]] = []
    skipped: list[str] = []
    expected = "expected <digit>_*.png or a <digit>/ folder"
    for entry in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if entry.is_dir() and re.fullmatch("[0-9]", entry.name):
            for file in sorted(p for p in entry.iterdir() if not p.name.startswith(".")):
                if file.is_file() and file.suffix.lower() in SUFFIXES:
                    files.append((file, int(entry.name)))
                else:
                    skipped.append(f"{file}: not an image file")
        elif entry.is_dir():
            skipped.append(f"{entry}: folder name is not a digit ({expected})")
        elif entry.suffix.lower() not in SUFFIXES:
            skipped.append(f"{entry}: not an image file")
        elif re.match("[0-9]_", entry.name):
            files.append((entry, int(entry.name[0])))
        else:
            skipped.append(f"{entry}: name does not say the digit ({expected})")
    return files, skipped


def labelled_folder(folder: Path, limit: int | None = None) -> Labelled:
    """Every labelled image in `folder`, framed as `predict` frames it; bad files are listed, not fatal."""
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    files, skipped = labelled_files(folder)
    pixels, labels, found, names, times = [], [], [], [], []
    for file, digit in files[:limit]:
        started = time.perf_counter()
        try:
            framed = frame(load_image(file))
        except UserError as e:  # unreadable, truncated, too large: its message names the file
            skipped.append(str(e))
            continue
        times.append((time.perf_counter() - started) * 1e3)
        pixels.append(np.zeros((SIZE, SIZE), np.uint8) if framed is None else framed)
        labels.append(digit)
        found.append(framed is not None)
        names.append(str(file))
    if not labels:
        detail = f"; {len(skipped)} files left out, first {skipped[0]}" if skipped else ""
        raise UserError(f"{folder}: no labelled images (expected DIR/<digit>/*.png or "
                        f"DIR/<digit>_*.png){detail}")
    return Labelled(source=f"labelled images in {folder}", pixels=np.stack(pixels), labels=np.array(labels, np.int64),
                    found=np.array(found), names=names, skipped=skipped, preprocess_ms=np.array(times))
