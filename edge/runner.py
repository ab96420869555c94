"""One LiteRT interpreter, loaded once and fed the way the model's own metadata says.

The model file describes itself (edge/metadata.py), so nothing here knows how a model was trained:
pixel scaling and quantization come from the metadata, and batching goes through
`resize_tensor_input`, because exported files have a fixed [1, 28, 28, 1] signature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.adapt import Adapter
from edge.confidence import Confidence
from edge.errors import UserError
from edge.litert import allocate
from edge.metadata import FEATURES, PROBABILITIES, dequantize, load_metadata, model_input


@dataclass
class Reading:
    """One answer: `digit` is None when there is no ink or the model is not sure enough (edge/confidence.py);
    `top` holds the best guesses all the same."""

    digit: int | None
    confidence: float
    top: list[tuple[int, float]]

    def as_json(self) -> dict:
        return {"digit": self.digit, "confidence": round(self.confidence, 4),
                "top": [[d, round(p, 4)] for d, p in self.top]}


NO_INK = Reading(digit=None, confidence=0.0, top=[])


def check_tensor(detail: dict, spec: dict, name: str, where: str) -> None:
    """UserError unless the metadata's spec of a tensor says what the interpreter reports of it (dtype,
    size, quantization): metadata edited after export would otherwise feed or read it wrongly."""
    scale, zero_point = detail["quantization"]
    agrees = (np.dtype(detail["dtype"]) == np.dtype(spec["dtype"]) and int(detail["shape"][-1]) == spec["shape"][-1]
              and (scale == 0 if spec["scale"] is None else
                   math.isclose(scale, spec["scale"], rel_tol=1e-6) and zero_point == spec["zero_point"]))
    if not agrees:
        raise UserError(f"{where}: its metadata says the {name} tensor is {spec['dtype']} x {spec['shape'][-1]} "
                        f"(scale {spec['scale']}), the model's is {np.dtype(detail['dtype']).name} x "
                        f"{detail['shape'][-1]} (scale {scale}); re-export it")


def named_outputs(interpreter, where: str) -> dict[str, dict]:
    """The model's output tensors by signature name: their order in the file says nothing."""
    try:
        return interpreter.get_signature_runner().get_output_details()
    except ValueError as e:
        raise UserError(f"{where}: expected one signature naming its outputs ({e}); re-export it") from None


class DigitModel:
    """A .tflite digit model with its metadata; `probabilities()` takes any batch size."""

    def __init__(self, path: str | Path, threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: no such model file")
        try:
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        except (ValueError, RuntimeError) as e:
            raise UserError(f"{self.path}: not a TFLite model ({str(e).splitlines()[0]})") from None
        self._input = self.interpreter.get_input_details()[0]
        shape = list(self._input["shape"])
        if shape[1:] != [28, 28, 1]:
            raise UserError(f"{self.path}: input shape {shape} is not a 28x28x1 digit model's")
        self.meta = load_metadata(self.path)
        # Each output's index and its spec in the metadata, checked against the tensor itself (the sha256
        # ties the metadata to this flatbuffer, not what it says); only models exported since teaching
        # exists have features, and only taught models an adaptation.
        details = named_outputs(self.interpreter, str(self.path))
        specs = {PROBABILITIES: self.meta["output"]}
        if "features" in self.meta:
            specs[FEATURES] = self.meta["features"]
        if missing := [name for name in specs if name not in details]:
            raise UserError(f"{self.path}: its signature has no {' or '.join(missing)} output; re-export it")
        check_tensor(self._input, self.meta["input"], "input", str(self.path))
        for name, spec in specs.items():
            check_tensor(details[name], spec, name, str(self.path))
        self._outputs = {name: (details[name]["index"], spec) for name, spec in specs.items()}
        # Each layer's result (export/stages.py), read only by `stages()`: predict never touches them.
        self.stage_specs = self.meta["stages"]["layers"] if "stages" in self.meta else []
        for stage in self.stage_specs:
            if stage["output"] not in details:
                raise UserError(f"{self.path}: its signature has no {stage['output']} output; re-export it")
            check_tensor(details[stage["output"]], stage, stage["output"], str(self.path))
        self._stage_index = {s["name"]: details[s["output"]]["index"] for s in self.stage_specs}
        self.adapter = Adapter(self.meta["adaptation"]) if "adaptation" in self.meta else None
        self.confidence = Confidence.of(self.meta)
        self._batch = shape[0]
        try:  # damaged weights can pass every check above and fail only here (an XNNPACK zero point)
            allocate(self.interpreter)
        except (ValueError, RuntimeError) as e:
            raise UserError(f"{self.path}: not a usable TFLite model ({str(e).splitlines()[0]})") from None

    def outputs(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 white-on-black (n, 28, 28) MNIST-framed pixels -> the base model's outputs, as float32:
        (n, 10) probabilities and, in models exported with them, (n, d) features."""
        self._invoke(pixels)
        return {name: self._output(name) for name in self._outputs}

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 white-on-black (n, 28, 28) MNIST-framed pixels -> (n, 10) class probabilities,
        adapted to the handwriting the model was taught, if it was (edge/adapt.py), then calibrated by
        the model's temperature (edge/confidence.py)."""
        if self.adapter:
            outputs = self.outputs(pixels)
            return self.confidence.calibrate(self.adapter(outputs[PROBABILITIES], outputs[FEATURES]))
        self._invoke(pixels)
        return self.confidence.calibrate(self._output(PROBABILITIES))

    def _invoke(self, pixels: np.ndarray) -> None:
        batch = model_input(pixels, self.meta)
        if len(batch) != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], [len(batch), 28, 28, 1])
            self.interpreter.allocate_tensors()
            self._batch = len(batch)
        self.interpreter.set_tensor(self._input["index"], batch)
        self.interpreter.invoke()

    def stages(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 (28, 28) pixels -> each layer's output tensor as the model stored it (uint8, see
        `stage_specs` for its scale and zero point); empty for models exported without stages."""
        self._invoke(pixels)
        return {name: self.interpreter.get_tensor(index)[0].copy() for name, index in self._stage_index.items()}

    def constant(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A constant tensor of the model (weights, biases) with its per-channel scales and zero points."""
        q = next(d for d in self.interpreter.get_tensor_details() if d["index"] == index)["quantization_parameters"]
        return self.interpreter.get_tensor(index).copy(), q["scales"], q["zero_points"]

    def _output(self, name: str) -> np.ndarray:
        index, spec = self._outputs[name]
        return dequantize(self.interpreter.get_tensor(index), spec)

    def read(self, pixels: np.ndarray, threshold: float | None = None, top_k: int = 3) -> list[Reading]:
        """Readings for a batch of framed digits; under `threshold` (default: the model's own, from its
        metadata) the answer is "no digit"."""
        if len(pixels) == 0:
            return []
        threshold = self.confidence.threshold if threshold is None else threshold
        readings = []
        for p in self.probabilities(pixels):
            order = np.argsort(-p, kind="stable")[:top_k]  # ties: lower digit first, on every CPU
            confidence = float(p[order[0]])
            readings.append(Reading(digit=int(order[0]) if confidence >= threshold else None,
                                    confidence=confidence,
                                    top=[(int(d), float(p[d])) for d in order]))
        return readings
