"""`teach`: adapt a model to someone's handwriting from a labelled folder of their digits.

The result is an adapted model: the same flatbuffer, its embedded metadata carrying the adaptation
(edge/adapt.py), which the runner applies. So `predict`, `camera`, `serve` and `evaluate` take it as
they take any model, and the phone page served from it answers adapted too. Teaching always starts
from the base model: teaching an adapted model again replaces its adaptation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.adapt import DIGITS, describe, fit, require_features, review
from edge.atomic import atomic_write, refuse_overwriting
from edge.errors import UserError
from edge.labelled import labelled_folder
from edge.metadata import FEATURES, PROBABILITIES, embed_metadata
from edge.runner import DigitModel
from edge.shipped import SHIPPED_MODEL


@dataclass(frozen=True)
class Taught:
    """What teaching did: the file written, per-digit counts, and what the user should know."""

    path: Path
    samples: np.ndarray  # (10,) samples per digit
    misread: np.ndarray  # (10,) of them, how many the base model reads as another digit
    warnings: list[str]  # one line each: digits with no or few samples, samples unlike their label
    left_out: list[str]  # "<file>: why", for files that are not samples (unreadable, no digit, ...)
    seconds: float  # reading the samples, running the model, fitting and writing


def default_output(samples: Path) -> Path:
    """Beside the samples folder, named after it: `alice/` teaches `alice.tflite`."""
    folder = samples.resolve()
    if folder.parent == folder:
        raise UserError(f"{samples}: give --out for an adapted model taught from the root folder")
    return folder.with_name(f"{folder.name}.tflite")


def check_output(out: Path, model_path: Path) -> None:
    """The adapted model goes to a new .tflite file: never over the model it is taught from, nor over the
    one shipped with digitcnn, which answer as before; and named so that commands take it as a model."""
    if out.suffix.lower() != ".tflite":
        raise UserError(f"{out}: the adapted model's name must end in .tflite")
    refuse_overwriting(out, {"the model being taught": model_path, "the model shipped with digitcnn": SHIPPED_MODEL})


def teach(samples: Path, model_path: Path, out: Path) -> Taught:
    """Adapt the model at `model_path` to the labelled digits in `samples` and write it to `out`."""
    started = time.perf_counter()
    check_output(out, model_path)
    model = DigitModel(model_path)
    require_features(model.meta, str(model_path))
    data = labelled_folder(samples)
    left_out = data.skipped + [f"{name}: no digit found" for name, found in zip(data.names, data.found) if not found]
    if not data.found.any():
        raise UserError(f"{samples}: no digit found in any of its {len(data)} images")
    labels, names = data.labels[data.found], [n for n, found in zip(data.names, data.found) if found]
    outputs = model.outputs(data.pixels[data.found])
    features, probabilities = outputs[FEATURES], outputs[PROBABILITIES]
    adaptation = fit(features, labels, probabilities, model.meta)
    issues = review(features, labels, probabilities, model.meta)
    with atomic_write(out) as f:
        f.write(embed_metadata(model.path.read_bytes(), {**model.meta, "adaptation": adaptation}))
    misread = np.bincount(labels[probabilities.argmax(axis=1) != labels], minlength=DIGITS)
    return Taught(path=out, samples=np.array(adaptation["samples"]), misread=misread,
                  warnings=[describe(issue, names[issue["index"]] if "index" in issue else "") for issue in issues],
                  left_out=left_out, seconds=time.perf_counter() - started)
