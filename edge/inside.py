"""What each layer of the int8 model computed for one digit, read from the model file itself.

Export gives every int8 model its layers' outputs as extra, named outputs (export/stages.py), and
the metadata says which tensors and options produced each one. This module turns one digit into
those stages, as the device stored them (int8, with their scale and zero point), plus what a reader
needs to follow the arithmetic: the first layer's filters, one position's multiply-and-add written
out, and how many multiply-adds each layer took. `explain --json` prints it, `explain` draws it,
and the page's Inside view (web/inside/) computes the same from the same file. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import UserError
from edge.metadata import model_input
from edge.runner import DigitModel

STORED_OFFSET = 128
"""Stage outputs are uint8 copies of int8 tensors (zero point + 128): the int8 the device stored is
the output minus this."""


@dataclass(frozen=True)
class Weights:
    """One conv or dense layer's constants as stored: int8 weights (out, ...), per-output-channel
    scales, int32 biases (in units of input scale x weight scale)."""

    values: np.ndarray
    scales: np.ndarray
    bias: np.ndarray

    def real(self) -> np.ndarray:
        return self.values * self.scales.reshape(-1, *[1] * (self.values.ndim - 1))


class Inside:
    """One model's stages; `read(pixels)` runs it once and gives every layer's stored result."""

    def __init__(self, model: DigitModel):
        if not model.stage_specs:
            raise UserError(f"{model.path}: exported without its layers' outputs (int8 models have them); "
                            "re-export it, or restage it with tools/ship_model.py")
        self.model = model
        self.specs = model.stage_specs
        self.weights = {s["name"]: _weights(model, s) for s in self.specs if s["kind"] in ("conv", "dense")}

    def stored(self, pixels: np.ndarray) -> dict[str, np.ndarray]:
        """uint8 (28, 28) pixels -> each stage's int8 values as the device stored them (batch dimension dropped)."""
        return {name: raw.astype(np.int16) - STORED_OFFSET for name, raw in self.model.stages(pixels).items()}

    def real(self, name: str, stored: np.ndarray) -> np.ndarray:
        """The real numbers a stage's stored int8 values stand for: scale x (q - zero point)."""
        spec = next(s for s in self.specs if s["name"] == name)
        return (stored - (spec["zero_point"] - STORED_OFFSET)) * np.float32(spec["scale"])

    def multiply_adds(self) -> dict[str, int]:
        """Multiply-adds each conv and dense layer does for one digit, counted from the tensors' shapes."""
        counts = {}
        for spec in self.specs:
            if spec["kind"] in ("conv", "dense"):
                per_output = int(np.prod(self.weights[spec["name"]].values.shape[1:]))
                counts[spec["name"]] = int(np.prod(spec["shape"][1:])) * per_output
        return counts

    def arithmetic(self, pixels: np.ndarray, y: int, x: int, channel: int) -> dict:
        """The first convolution at output (y, x) of filter `channel`, written out in real numbers: the
        inputs under the filter, the weights, their products and sum, the bias, the activation, and
        the value the device stored there (which the written-out sum, requantized, reproduces)."""
        spec = next(s for s in self.specs if s["kind"] == "conv")
        weights = self.weights[spec["name"]]
        (kh, kw), (sh, sw) = spec["kernel"], spec["stride"]
        oh, ow = spec["shape"][1:3]
        top, left = _padding(spec, 28, oh, kh, sh), _padding(spec, 28, ow, kw, sw)
        inputs = self.model.meta["input"]
        padded = np.zeros((28 + kh + sh * oh, 28 + kw + sw * ow), np.int64)  # zeros: real 0, as TFLite pads
        padded[top:top + 28, left:left + 28] = model_input(pixels, self.model.meta)[0, :, :, 0] - inputs["zero_point"]
        window = padded[y * sh:y * sh + kh, x * sw:x * sw + kw]
        q_weights = weights.values[channel, :, :, 0].astype(np.int64)
        scale = inputs["scale"] * float(weights.scales[channel])
        accumulator = int((window * q_weights).sum() + weights.bias[channel])
        total = accumulator * scale
        activated = max(total, 0.0) if spec["activation"] == "relu" else total
        zero_point = spec["zero_point"] - STORED_OFFSET
        requantized = int(np.clip(np.rint(accumulator * (scale / spec["scale"])) + zero_point,
                                  zero_point if spec["activation"] == "relu" else -128, 127))
        stored = int(self.stored(pixels)[spec["name"]][y, x, channel])
        return {"layer": spec["name"], "y": y, "x": x, "filter": channel,
                "inputs": (window * inputs["scale"]).round(6).tolist(),
                "weights": (q_weights * float(weights.scales[channel])).round(6).tolist(),
                "products": (window * q_weights * scale).round(6).tolist(),
                "sum": round(float((window * q_weights).sum() * scale), 6),
                "bias": round(float(weights.bias[channel] * scale), 6), "total": round(total, 6),
                "activation": spec["activation"], "activated": round(activated, 6),
                "requantized": requantized, "stored": stored, "scale": spec["scale"], "zero_point": zero_point}

    def read(self, pixels: np.ndarray) -> dict:
        """Everything `explain --json` prints for one framed digit: each stage as stored, the first layer's
        filters, and the multiply-adds per layer."""
        stored = self.stored(pixels)
        first = next(s for s in self.specs if s["kind"] == "conv")
        weights = self.weights[first["name"]]
        return {
            "input": {"pixels": np.asarray(pixels).tolist(), "scale": self.model.meta["input"]["scale"],
                      "zero_point": self.model.meta["input"]["zero_point"]},
            "filters": {"layer": first["name"], "weights": weights.values[..., 0].tolist(),
                        "scales": weights.scales.tolist(), "bias": weights.bias.tolist()},
            "stages": [{"name": s["name"], "kind": s["kind"], "shape": s["shape"][1:], "scale": s["scale"],
                        "zero_point": s["zero_point"] - STORED_OFFSET, "values": stored[s["name"]].tolist()}
                       for s in self.specs],
            "multiply_adds": self.multiply_adds(),
        }


def _weights(model: DigitModel, spec: dict) -> Weights:
    values, scales, _ = model.constant(spec["weights_tensor"])
    return Weights(values, scales, model.constant(spec["bias_tensor"])[0])


def _padding(spec: dict, size: int, out: int, kernel: int, stride: int) -> int:
    """Rows (or columns) of zeros before the image: TFLite's SAME pads the odd one after."""
    return max((out - 1) * stride + kernel - size, 0) // 2 if spec["padding"] == "same" else 0
