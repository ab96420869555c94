"""Run a model over labelled digits: one interface for .keras and .tflite, two kinds of labelled data.

A .tflite model runs through the edge runner, so evaluating it never imports TensorFlow; Keras is
imported only when a .keras file is given. Labelled data is the MNIST test split, or a folder of
your own images (`DIR/<digit>/*` or `DIR/<digit>_*.png`) framed by `edge.preprocess` exactly as
`predict` frames them, so a folder score is the score a user of `predict` would see.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from digitcnn.data import IDX_NAMES, NUM_CLASSES, load_mnist
from edge.confidence import Confidence
from edge.errors import UserError
from edge.labelled import Labelled, labelled_folder

BATCH = 500  # images per model call: bounds the memory of lenet-plus' float feature maps
NO_DIGIT = NUM_CLASSES  # the answer when preprocessing finds no digit: always a wrong answer
MODEL_SUFFIXES = (".keras", ".tflite")


@dataclass(frozen=True)
class Model:
    """A digit model of either format, reduced to the one call evaluation needs."""

    path: Path
    kind: str  # "keras" or "tflite"
    probabilities: Callable[[np.ndarray], np.ndarray]  # uint8 (n, 28, 28) -> (n, 10), calibrated
    confidence: Confidence  # when `predict` says "no digit" (edge/confidence.py); Keras models: today's rule


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
            [runner.probabilities(pixels[i:i + BATCH]) for i in range(0, len(pixels), BATCH)]), runner.confidence)
    from export.source import find_source, keras_probabilities, load_keras_model

    source = find_source(path)  # metrics.json beside the model: its pixel scaling
    keras_model = load_keras_model(source)
    return Model(path, "keras", lambda pixels: keras_probabilities(keras_model, pixels, source.pixel_scaling, BATCH),
                 Confidence())


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
    def withheld(self) -> np.ndarray:
        """Where `predict` answers "no digit" though a digit was found: the model's rule withholds its best guess."""
        return self.data.found & (self.confidence < self.model.confidence.threshold)

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
