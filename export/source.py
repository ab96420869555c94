"""The Keras side of an export: the run, its model, how it scales pixels, and its reference answers.

Pixel scaling comes from the run's metrics.json, written by training, so an export can never pair
a model with a scaling it was not trained on; a bare .keras file without it is refused.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from digitcnn.data import Mnist, run_split
from edge.errors import UserError
from edge.metadata import check_pixel_scaling, model_input

# Run facts copied into every export's metadata: with the settings below, the data's sha256 and the
# library versions, enough to train the same weights again (training is deterministic on one machine kind).
SUMMARY_KEYS = ("model", "params", "test_accuracy", "weights_sha256", "versions")
# The run's settings that name places on the machine that trained it, not what it computed.
LOCAL_SETTINGS = ("out", "data", "usps_path")
# One image per call: LiteRT.js rejects a dynamic batch; Python resizes the batch after loading.
INPUT_SHAPE = [1, 28, 28, 1]


@dataclass(frozen=True)
class Source:
    model_path: Path
    metrics: dict
    pixel_scaling: dict

    @property
    def run_dir(self) -> Path:
        return self.model_path.parent

    def validation(self, mnist: Mnist) -> tuple[np.ndarray, np.ndarray]:
        """The images this run held out from training, and their labels (its seed, val_size and subset)."""
        config = self.metrics["config"]
        _, _, x_val, y_val = run_split(mnist.x_train, mnist.y_train, val_size=config["val_size"],
                                       seed=config["seed"], subset=config.get("subset"))
        return x_val, y_val.astype(np.int64)

    def summary(self) -> dict:
        """The run's identity, key metrics and recipe, as metadata's `source` field."""
        config = {k: v for k, v in self.metrics["config"].items() if k not in LOCAL_SETTINGS}
        return {"run_dir": str(self.run_dir.resolve()), **{k: self.metrics[k] for k in SUMMARY_KEYS},
                "config": config, "data_sha256": self.metrics["data"]["sha256"]}


def find_source(path: str | Path) -> Source:
    """A run directory, or a .keras file with the run's metrics.json beside it (no TensorFlow yet)."""
    path = Path(path)
    model_path = path / "model.keras" if path.is_dir() else path
    if not path.exists():
        raise UserError(f"{path}: no such run directory or .keras file")
    if not model_path.is_file():
        raise UserError(f"{path}: no model.keras in this directory (train a run first, or give a .keras file)")
    if not zipfile.is_zipfile(model_path):
        raise UserError(f"{model_path}: not a Keras model (a .keras file is a zip archive; this one is damaged or "
                        "something else)")
    metrics_path = model_path.parent / "metrics.json"
    if not metrics_path.is_file():
        raise UserError(f"{model_path}: pixel scaling is unknown (no metrics.json beside it); "
                        "export the run directory that `cli.py train` wrote")
    try:
        metrics = json.loads(metrics_path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{metrics_path}: not readable JSON ({e})") from None
    if not isinstance(metrics, dict):
        raise UserError(f"{metrics_path}: expected a JSON object of run metrics")
    missing = [k for k in ("pixel_scaling", "config", "data", *SUMMARY_KEYS) if k not in metrics]
    if missing:
        raise UserError(f"{metrics_path}: missing {', '.join(missing)} (not written by `cli.py train`?)")
    return Source(model_path, metrics, check_pixel_scaling(metrics["pixel_scaling"], str(metrics_path)))


def load_keras_model(source: Source):
    """The trained Keras model, or a one-line UserError if the file is not one."""
    import keras

    import digitcnn.model  # noqa: F401  registers the layers lenet-plus saves (FusedBatchNormalization)

    try:
        return keras.saving.load_model(source.model_path, compile=False)
    except Exception as e:  # Keras raises many types for a damaged file; all mean the same here
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        raise UserError(f"{source.model_path}: not a readable Keras model ({reason})") from None


def float_input_spec() -> dict:
    """The input of the float models (and of Keras): float32 values, no quantization."""
    return {"shape": list(INPUT_SHAPE), "dtype": "float32", "scale": None, "zero_point": None}


def keras_probabilities(model, pixels: np.ndarray, pixel_scaling: dict, batch: int = 1000) -> np.ndarray:
    """Softmax of the Keras logits for uint8 images, fed exactly as the float .tflite files are."""
    import keras

    io = {"pixel_scaling": pixel_scaling, "input": float_input_spec()}
    chunks = [model(model_input(pixels[i : i + batch], io), training=False) for i in range(0, len(pixels), batch)]
    return np.concatenate([keras.ops.convert_to_numpy(keras.ops.softmax(c)) for c in chunks])
