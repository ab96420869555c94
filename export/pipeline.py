"""One export from start to finish: find the run, convert each variant, verify it on the whole
test set, describe it, and write it only if it holds up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from digitcnn.data import Mnist, load_mnist
from edge.adapt import feature_statistics
from edge.atomic import atomic_write, check_target, write_json
from edge.confidence import calibrate, fit_temperature, fit_threshold
from edge.metadata import build_metadata, embed_metadata, model_input, sidecar_path
from export.calibration import representative_images
from export.convert import check_io, convert_variants
from export.latency import latency_per_image
from export.source import Source, find_source, float_input_spec, keras_probabilities, load_keras_model
from export.stages import with_stages
from export.verify import features_and_probabilities, predict, tensor_specs, verify


@dataclass(frozen=True)
class Exported:
    variant: str
    size: int  # bytes of the .tflite, embedded metadata included
    verification: dict  # images, test_accuracy, keras_test_accuracy, agreement, max_abs_diff
    latency: float  # seconds per image at batch 1, one thread
    path: Path | None  # None when the variant was not written
    failure: str | None  # why it was not written


def export_run(path: str | os.PathLike, variants: list[str], out: str | os.PathLike | None = None,
               max_drop: float = 0.3, data: str | os.PathLike | None = None) -> Iterator[Exported]:
    """Export the run at `path` (a run directory or its model.keras) as each variant, one at a time.

    A variant whose test accuracy falls more than `max_drop` percentage points below the Keras
    model's, or whose tensors break the contract, is reported with a failure and not written (an
    earlier export's files for it are removed). Files go to `out`, else beside the model.
    """
    source = find_source(path)  # before TensorFlow's slow import, so bad paths fail fast
    model = load_keras_model(source)
    mnist = load_mnist(data)
    keras_probs = keras_probabilities(model, mnist.x_test, source.pixel_scaling)
    reference = representative_images(mnist.x_train, mnist.y_train)  # int8 calibration, and teaching's anchors
    calibration = None
    if "int8" in variants:
        calibration_io = {"pixel_scaling": source.pixel_scaling, "input": float_input_spec()}
        calibration = model_input(reference[0], calibration_io)
    out_dir = Path(out) if out else source.run_dir
    validation = source.validation(mnist)  # where each variant's confidence is fitted
    for variant, flatbuffer in convert_variants(model, variants, calibration).items():
        yield _finish(variant, flatbuffer, source, mnist, keras_probs, reference, validation, out_dir, max_drop)


def confidence(flatbuffer: bytes, io_meta: dict, validation: tuple[np.ndarray, np.ndarray]) -> dict:
    """The "no digit" rule of one variant (edge/confidence.py): the temperature that calibrates its own
    probabilities on the run's validation images, and the highest threshold that still answers those
    digits (`fit_threshold`)."""
    pixels, labels = validation
    probabilities = predict(flatbuffer, pixels, io_meta)
    temperature = fit_temperature(probabilities, labels)
    return {"temperature": temperature, "threshold": fit_threshold(calibrate(probabilities, temperature)),
            "images": len(labels)}


def _finish(variant: str, flatbuffer: bytes, source: Source, mnist: Mnist, keras_probs: np.ndarray,
            reference: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray], out_dir: Path,
            max_drop: float) -> Exported:
    io = tensor_specs(flatbuffer)
    io_meta = {"pixel_scaling": source.pixel_scaling, **io}
    stages = None
    if variant == "int8":  # each layer's result as an extra output, for the Inside view (export/stages.py)
        flatbuffer, stages = with_stages(flatbuffer, io_meta, mnist.x_test)
    scores = verify(flatbuffer, io_meta, mnist.x_test, mnist.y_test, keras_probs)
    pixels, labels = reference
    io["features"].update(feature_statistics(*features_and_probabilities(flatbuffer, pixels, io_meta), labels))
    one_image = model_input(mnist.x_test[:1], io_meta)
    path = out_dir / f"model_{variant}.tflite"
    problems = check_io(io, variant, source.pixel_scaling)
    drop = round(100 * (scores["keras_test_accuracy"] - scores["test_accuracy"]), 6)
    if drop > max_drop:
        problems.append(f"test accuracy {scores['test_accuracy']:.2%} is {drop:.2f} points below Keras' "
                        f"{scores['keras_test_accuracy']:.2%} (--max-drop {max_drop:g})")
    if problems:
        # An earlier export's file would now pass for this model's: remove it too.
        stale = [p for p in (path, sidecar_path(path)) if p.exists()]
        for p in stale:
            p.unlink()
        removed = f" (removed the earlier {', '.join(p.name for p in stale)})" if stale else ""
        return Exported(variant, len(flatbuffer), scores, latency_per_image(flatbuffer, one_image), None,
                        f"{variant}: {'; '.join(problems)}; not written{removed}")
    meta = build_metadata(variant=variant, **io, confidence=confidence(flatbuffer, io_meta, validation),
                          pixel_scaling=source.pixel_scaling, source=source.summary(), verification=scores,
                          flatbuffer=flatbuffer, stages=stages, training=source.metrics.get("training"))
    tflite = embed_metadata(flatbuffer, meta)
    latency = latency_per_image(tflite, one_image)  # timed on the final file, which proves it loads and runs
    for target in (path, sidecar_path(path)):  # both writable, or neither written
        check_target(target)
    with atomic_write(path) as f:
        f.write(tflite)
    write_json(sidecar_path(path), meta)
    return Exported(variant, len(tflite), scores, latency, path, None)
