"""Run a flatbuffer in ai-edge-litert, the runtime the edge uses, and score it against Keras.

Inputs go through edge.metadata.model_input and outputs through edge.metadata.probabilities, so
verification exercises the same contract code that the edge will run.
"""

from __future__ import annotations

import numpy as np
from ai_edge_litert.interpreter import Interpreter

from edge.litert import allocate
from edge.metadata import FEATURES, PROBABILITIES, dequantize, model_input, probabilities
from edge.runner import named_outputs


def resize(interpreter: Interpreter, batch: int) -> None:
    """Make the fixed batch-1 model take `batch` images per invoke."""
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], [batch, *detail["shape_signature"][1:]])
    allocate(interpreter)


def load_interpreter(model: bytes, batch: int = 1, threads: int = 1) -> Interpreter:
    interpreter = Interpreter(model_content=model, num_threads=threads)
    resize(interpreter, batch)
    return interpreter


def tensor_specs(model: bytes, names: list[str] | None = None) -> dict:
    """The input, output (probabilities) and features tensors as metadata records them (scale and zero
    point null for floats); with `names`, those named outputs instead."""
    interpreter = Interpreter(model_content=model)

    def spec(detail: dict) -> dict:
        scale, zero_point = detail["quantization"]
        quantized = np.dtype(detail["dtype"]) != np.float32
        return {"shape": detail["shape_signature"].tolist(), "dtype": np.dtype(detail["dtype"]).name,
                "scale": float(scale) if quantized else None, "zero_point": int(zero_point) if quantized else None}

    outputs = named_outputs(interpreter, "converted model")
    if names is not None:
        return {name: spec(outputs[name]) for name in names}
    return {"input": spec(interpreter.get_input_details()[0]), "output": spec(outputs[PROBABILITIES]),
            "features": spec(outputs[FEATURES])}


def run(model: bytes, inputs: np.ndarray, batch: int = 500, threads: int = 1,
        outputs: tuple[str, ...] = (PROBABILITIES,)) -> dict[str, np.ndarray]:
    """Raw tensors of the named outputs for model inputs (n, 28, 28, 1), `batch` images per invoke."""
    interpreter = load_interpreter(model, min(batch, len(inputs)), threads)
    index_in = interpreter.get_input_details()[0]["index"]
    named = named_outputs(interpreter, "converted model")
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in outputs}
    for start in range(0, len(inputs), batch):
        chunk = inputs[start : start + batch]
        if len(chunk) != interpreter.get_input_details()[0]["shape"][0]:
            resize(interpreter, len(chunk))
        interpreter.set_tensor(index_in, chunk)
        interpreter.invoke()
        for name in outputs:
            chunks[name].append(interpreter.get_tensor(named[name]["index"]).copy())
    return {name: np.concatenate(parts) for name, parts in chunks.items()}


def predict(model: bytes, pixels: np.ndarray, meta: dict) -> np.ndarray:
    """Class probabilities for uint8 images; `meta` holds at least pixel_scaling, input and output."""
    return probabilities(run(model, model_input(pixels, meta))[PROBABILITIES], meta)


def features_and_probabilities(model: bytes, pixels: np.ndarray, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    """The features output (dequantized) and class probabilities for uint8 images, in one pass; `meta`
    holds pixel_scaling, input, output and features."""
    raw = run(model, model_input(pixels, meta), outputs=(FEATURES, PROBABILITIES))
    return dequantize(raw[FEATURES], meta["features"]), probabilities(raw[PROBABILITIES], meta)


def verify(model: bytes, meta: dict, pixels: np.ndarray, labels: np.ndarray, keras_probs: np.ndarray) -> dict:
    """Accuracy on (pixels, labels), top-1 agreement with Keras, and for float output the largest
    probability difference (quantized output moves in steps of its scale, so it has none)."""
    probs = predict(model, pixels, meta)
    top1, keras_top1 = probs.argmax(axis=1), keras_probs.argmax(axis=1)
    return {
        "images": len(labels),
        "test_accuracy": float(np.mean(top1 == labels)),
        "keras_test_accuracy": float(np.mean(keras_top1 == labels)),
        "agreement": float(np.mean(top1 == keras_top1)),
        "max_abs_diff": float(np.abs(probs - keras_probs).max()) if meta["output"]["scale"] is None else None,
    }
