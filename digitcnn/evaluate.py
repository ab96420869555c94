"""Run a model over labelled digits: one interface for .keras and .tflite, two kinds of labelled data.

A .tflite model runs through the edge runner, so evaluating it never imports TensorFlow; Keras is
imported only when a .keras file is given. Labelled data is the MNIST test split, or a folder of
your own images (`DIR/<digit>/*` or `DIR/<digit>_*.png`) framed by `edge.preprocess` exactly as
`predict` frames them, so a folder score is the score a user of `predict` would see.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from digitcnn.data import IDX_NAMES, NUM_CLASSES, load_mnist
from edge.errors import UserError
from edge.predict import IMAGE_SUFFIXES
from edge.preprocess import SIZE, NoDigit, load_image, to_mnist

BATCH = 500  # images per model call: bounds the memory of lenet-plus' float feature maps
NO_DIGIT = NUM_CLASSES  # the answer when preprocessing finds no digit: always a wrong answer
MODEL_SUFFIXES = (".keras", ".tflite")


@dataclass(frozen=True)
class Model:
    """A digit model of either format, reduced to the one call evaluation needs."""

    path: Path
    kind: str  # "keras" or "tflite"
    probabilities: Callable[[np.ndarray], np.ndarray]  # uint8 (n, 28, 28) -> (n, 10)


def check_model_path(path: str | Path) -> Path:
    """The path of an existing .keras or .tflite file, or a one-line UserError."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such model file")
    if path.is_dir() or path.suffix not in MODEL_SUFFIXES:
        raise UserError(f"{path}: not a model file (expected {' or '.join(MODEL_SUFFIXES)})")
    return path


def open_model(path: str | Path) -> Model:
    """Load a .tflite model through the edge runner, or a .keras model with its run's pixel scaling."""
    path = check_model_path(path)
    if path.suffix == ".tflite":
        from edge.runner import DigitModel

        runner = DigitModel(path)
        return Model(path, "tflite", lambda pixels: np.concatenate(
            [runner.probabilities(pixels[i:i + BATCH]) for i in range(0, len(pixels), BATCH)]))
    from export.source import find_source, keras_probabilities, load_keras_model

    source = find_source(path)  # metrics.json beside the model: its pixel scaling
    keras_model = load_keras_model(source)
    return Model(path, "keras", lambda pixels: keras_probabilities(keras_model, pixels, source.pixel_scaling, BATCH))


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


def is_image_folder(data: str | Path | None) -> bool:
    """Is `data` a folder of labelled images (rather than None, an MNIST npz or an IDX folder)?"""
    if data is None or not Path(data).is_dir():
        return False
    return not any(p.name.startswith(IDX_NAMES["x_test"]) for p in Path(data).iterdir())


def load_labelled(data: str | Path | None = None, limit: int | None = None) -> Labelled:
    """A labelled image folder, else the MNIST test split (`data` an npz, an IDX folder or None)."""
    return labelled_folder(Path(data), limit) if is_image_folder(data) else mnist_test(data, limit)


def mnist_test(data: str | Path | None = None, limit: int | None = None) -> Labelled:
    """The first `limit` (default all) MNIST test images; loads no TensorFlow when a path is known."""
    mnist = load_mnist(data, train=False)
    x, y = mnist.x_test[:limit], mnist.y_test[:limit].astype(np.int64)
    return Labelled(source=f"MNIST test set ({mnist.source})", pixels=x, labels=y, found=np.ones(len(y), bool),
                    names=[f"MNIST test #{i}" for i in range(len(y))])


def labelled_files(folder: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """(file, digit) pairs from `folder`, and one message per entry that is not a labelled image."""
    files: list[tuple[Path, int]] = []
    skipped: list[str] = []
    expected = "expected <digit>_*.png or a <digit>/ folder"
    for entry in sorted(p for p in folder.iterdir() if not p.name.startswith(".")):
        if entry.is_dir() and re.fullmatch("[0-9]", entry.name):
            for file in sorted(p for p in entry.iterdir() if not p.name.startswith(".")):
                if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                    files.append((file, int(entry.name)))
                else:
                    skipped.append(f"{file}: not an image file")
        elif entry.is_dir():
            skipped.append(f"{entry}: folder name is not a digit ({expected})")
        elif entry.suffix.lower() not in IMAGE_SUFFIXES:
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
        raise UserError(f"{folder}: no labelled images to evaluate (expected DIR/<digit>/*.png or "
                        f"DIR/<digit>_*.png){detail}")
    return Labelled(source=f"labelled images in {folder}", pixels=np.stack(pixels), labels=np.array(labels, np.int64),
                    found=np.array(found), names=names, skipped=skipped, preprocess_ms=np.array(times))


@dataclass
class Evaluation:
    """One model's answers on one labelled set, and how long they took."""

    model: Model
    data: Labelled
    probabilities: np.ndarray  # (n, 10) float32; zeros where no digit was found
    seconds: float  # the batched pass over every image
    latency_ms: np.ndarray  # single-image model calls on a sample

    @property
    def predicted(self) -> np.ndarray:
        return np.where(self.data.found, self.probabilities.argmax(axis=1), NO_DIGIT)

    @property
    def confidence(self) -> np.ndarray:
        return self.probabilities.max(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.data.labels

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())


def evaluate(model: Model, data: Labelled, latency_samples: int = 100) -> Evaluation:
    """Answer every image in batches, then time `latency_samples` single-image calls (after a warm-up)."""
    probs = np.zeros((len(data), NUM_CLASSES), np.float32)
    started = time.perf_counter()
    if data.found.any():
        probs[data.found] = model.probabilities(data.pixels[data.found])
    seconds = time.perf_counter() - started
    sample = data.pixels[data.found][:latency_samples]
    latency = []
    if len(sample):
        model.probabilities(sample[:1])  # warm-up: the first batch-1 call sets the runtime up for it
    for one in sample:
        tick = time.perf_counter()
        model.probabilities(one[None])
        latency.append((time.perf_counter() - tick) * 1e3)
    return Evaluation(model, data, probs, seconds, np.array(latency))
