"""How the network read one digit, step by step: the classic LeNet picture, for .keras and .tflite.

A stage is what one step of the network hands to the next: the input pixels, the first layer's
filters, the feature maps after each convolution (batch norm and ReLU included, as TFLite fuses
them) and after each pooling, the flattened vector, each dense layer's vector and the ten class
probabilities (for a .tflite model, calibrated by its metadata's rule, as `predict` and the page show
them). Keras gives them through a model that returns every layer's output; an int8 model
exported with its stages gives them as its own outputs (edge/inside.py, the numbers the page's
Inside view shows); other LiteRT models keep them when the interpreter preserves all tensors. int8
tensors are dequantized with their own scale and zero point, so all draw the same picture in the
same units.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from digitcnn.evaluate import check_model_path
from digitcnn.figures import pyplot
from edge.confidence import Confidence
from edge.metadata import PROBABILITIES, model_input, probabilities

MAX_MAPS = 16  # feature maps drawn per stage: enough to see what the layer does, small enough to read
CROP = 10  # side of the input crop whose pixel values are printed
VECTOR_ROW = 200  # a longer vector is wrapped into rows of at most this many values

# How each layer (Keras class, or the nearest of its bases: FusedBatchNormalization is a batch norm) or
# op (TFLite) maps to a stage; "follow" steps (activation, batch norm) replace the output of the stage
# before them, so both formats give the same stages.
KERAS_STEPS = {"Conv2D": "conv", "DepthwiseConv2D": "conv", "SeparableConv2D": "conv", "MaxPooling2D": "pool",
               "AveragePooling2D": "pool", "Flatten": "flatten", "Dense": "dense", "BatchNormalization": "follow",
               "ReLU": "follow", "Activation": "follow", "LeakyReLU": "follow"}
TFLITE_STEPS = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "conv", "MAX_POOL_2D": "pool", "AVERAGE_POOL_2D": "pool",
                "RESHAPE": "flatten", "FULLY_CONNECTED": "dense", "RELU": "follow", "RELU6": "follow",
                "LEAKY_RELU": "follow", "ADD": "follow", "MUL": "follow"}


@dataclass
class Stage:
    kind: str  # input, filters, conv, pool, flatten, dense, output
    number: int  # 1 for the first stage of its kind, 2 for the second, ...
    values: np.ndarray  # input (28, 28) uint8; filters (k, h, w); conv, pool (h, w, c); others (n,)

    @property
    def title(self) -> str:
        v, n = self.values, self.number
        maps = len(v) if self.kind == "filters" else v.shape[-1]
        shown = f" (first {MAX_MAPS} shown)" if v.ndim == 3 and maps > MAX_MAPS else ""
        if self.kind == "input":
            return "input: 28x28 pixels, 0 = background, 255 = ink (numbers: the orange crop)"
        if self.kind == "filters":
            return f"conv 1 filters: {maps} of {v.shape[1]}x{v.shape[2]}{shown} (red +, blue -)"
        if self.kind in ("conv", "pool"):
            return f"{self.kind} {n}: {maps} feature maps of {v.shape[0]}x{v.shape[1]}{shown}"
        if self.kind == "flatten":
            return f"flattened: the maps as one vector of {v.size} numbers"
        if self.kind == "dense":
            return f"dense {n}: " + ("one score per digit, before softmax" if v.size == 10 else f"{v.size} numbers")
        return f"output: probabilities, answer {int(v.argmax())} ({v.max():.1%})"


def assemble(pixels: np.ndarray, filters: np.ndarray, steps: list[tuple[str | None, np.ndarray]],
             probs: np.ndarray) -> list[Stage]:
    """Stages from the network's steps in order: (kind or "follow" or None to skip, output of one image)."""
    stages = [Stage("input", 1, pixels), Stage("filters", 1, filters)]
    counts: Counter = Counter()
    for kind, values in steps:
        if kind == "follow" and stages[-1].kind in ("conv", "pool", "dense"):
            stages[-1].values = values
        elif kind in ("conv", "pool", "flatten", "dense"):
            counts[kind] += 1
            stages.append(Stage(kind, counts[kind], values))
    return [*stages, Stage("output", 1, probs)]


def explainer(path: str | Path) -> Callable[[np.ndarray], list[Stage]]:
    """Load a model once; the result maps a (28, 28) uint8 digit to its stages."""
    path = check_model_path(path)
    return _tflite_explainer(path) if path.suffix == ".tflite" else _keras_explainer(path)


def _keras_step(layer) -> str | None:
    """The stage of a Keras layer, by its class or the nearest base class KERAS_STEPS names."""
    return next((KERAS_STEPS[c.__name__] for c in type(layer).__mro__ if c.__name__ in KERAS_STEPS), None)


def _keras_explainer(path: Path) -> Callable[[np.ndarray], list[Stage]]:
    import keras

    from export.source import find_source, float_input_spec, load_keras_model

    source = find_source(path)
    model = load_keras_model(source)
    probe = keras.Model(model.inputs, [layer.output for layer in model.layers])
    io = {"pixel_scaling": source.pixel_scaling, "input": float_input_spec()}
    first_conv = next(layer for layer in model.layers if _keras_step(layer) == "conv")
    filters = np.moveaxis(keras.ops.convert_to_numpy(first_conv.kernel)[:, :, 0, :], -1, 0)  # (out, h, w)

    def stages(pixels: np.ndarray) -> list[Stage]:
        outputs = [keras.ops.convert_to_numpy(o)[0] for o in probe([model_input(pixels, io)])]
        steps = [(_keras_step(layer), o) for layer, o in zip(model.layers, outputs)]
        logits = outputs[-1].astype(np.float64)
        probs = np.exp(logits - logits.max())
        return assemble(pixels, filters, steps, (probs / probs.sum()).astype(np.float32))

    return stages


def _tflite_explainer(path: Path) -> Callable[[np.ndarray], list[Stage]]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edge.runner import DigitModel, named_outputs

    model = DigitModel(path)  # validates the file and its metadata, with the runner's messages
    if model.stage_specs:
        return _staged_explainer(model)
    meta, rule = model.meta, Confidence.of(model.meta)
    with warnings.catch_warnings():  # "for debugging purposes only": that is what this is
        warnings.simplefilter("ignore")
        interpreter = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    # The graph's own ops, in execution order; delegate nodes would repeat them.
    ops = [op for op in interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]
    first_conv = next(op for op in ops if TFLITE_STEPS.get(op["op_name"]) == "conv")

    def tensor(index: int) -> np.ndarray:
        return dequantize(interpreter.get_tensor(index), details[index]["quantization_parameters"])

    def stages(pixels: np.ndarray) -> list[Stage]:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], model_input(pixels, meta))
        interpreter.invoke()
        steps = [(TFLITE_STEPS.get(op["op_name"]), tensor(op["outputs"][0])[0]) for op in ops]
        filters = tensor(first_conv["inputs"][1])[..., 0]  # (out, h, w, in) -> (out, h, w)
        output = interpreter.get_tensor(named_outputs(interpreter, str(path))[PROBABILITIES]["index"])
        return assemble(pixels, filters, steps, rule.calibrate(probabilities(output, meta)[0]))

    return stages


def _staged_explainer(model) -> Callable[[np.ndarray], list[Stage]]:
    """The stages a model exported with its layers' outputs computes (edge/inside.py: the very numbers
    `explain --json` prints and the page's Inside view shows), in real units."""
    from edge.inside import Inside

    inside, rule = Inside(model), Confidence.of(model.meta)
    first = next(s for s in inside.specs if s["kind"] == "conv")
    filters = inside.weights[first["name"]].real()[..., 0]
    kinds = {"conv": "conv", "max_pool": "pool", "dense": "dense"}

    def stages(pixels: np.ndarray) -> list[Stage]:
        stored = inside.stored(pixels)
        steps: list[tuple[str | None, np.ndarray]] = []
        for spec in inside.specs[:-1]:  # the last, softmax, is the output
            values = inside.real(spec["name"], stored[spec["name"]])
            if spec["kind"] == "dense" and steps and steps[-1][1].ndim == 3:
                steps.append(("flatten", steps[-1][1].ravel()))
            steps.append((kinds[spec["kind"]], values))
        last = inside.specs[-1]["name"]
        return assemble(pixels, filters, steps, rule.calibrate(inside.real(last, stored[last])))

    return stages


def dequantize(values: np.ndarray, quantization: dict) -> np.ndarray:
    """Real values of a tensor: (q - zero point) * scale, per channel when it has several scales."""
    scales, zero_points = quantization["scales"], quantization["zero_points"]
    if values.dtype == np.float32 or scales.size == 0:
        return values.astype(np.float32)
    shape = [1] * values.ndim
    if scales.size > 1:
        shape[quantization["quantized_dimension"]] = -1
    return ((values.astype(np.float32) - zero_points.reshape(shape)) * scales.reshape(shape)).astype(np.float32)


def _mosaic(maps: np.ndarray) -> np.ndarray:
    """Up to MAX_MAPS maps (h, w, c) side by side, one pixel of NaN between them."""
    h, w, c = maps.shape
    c = min(c, MAX_MAPS)
    out = np.full((h, c * (w + 1) - 1), np.nan, np.float32)
    for i in range(c):
        out[:, i * (w + 1):i * (w + 1) + w] = maps[:, :, i]
    return out


def _wrapped(vector: np.ndarray) -> np.ndarray:
    """A long vector as rows of VECTOR_ROW values (NaN-padded), so each value stays visible."""
    rows = -(-vector.size // VECTOR_ROW)
    width = -(-vector.size // rows)
    out = np.full(rows * width, np.nan, np.float32)
    out[:vector.size] = vector
    return out.reshape(rows, width)


def _draw_input(fig, cell, stage: Stage) -> None:
    pixels = stage.values
    left, right, notes = cell.subgridspec(1, 3, width_ratios=[1, 1, 1.3]).subplots()
    notes.axis("off")
    notes.text(0, 0.5, READING, fontsize=8, va="center")
    weight = pixels.astype(np.float64) + 1e-9  # a blank image centres the crop
    ys, xs = np.indices(pixels.shape)
    top, left_col = (min(max(round((c * weight).sum() / weight.sum()) - CROP // 2, 0), 28 - CROP) for c in (ys, xs))
    left.imshow(pixels, cmap="gray", vmin=0, vmax=255)
    left.add_patch(pyplot().Rectangle((left_col - 0.5, top - 0.5), CROP, CROP, fill=False, color="orange", lw=1.5))
    left.set_title(stage.title, loc="left", fontsize=9)
    crop = pixels[top:top + CROP, left_col:left_col + CROP]
    right.imshow(crop, cmap="gray", vmin=0, vmax=255)
    for (y, x), value in np.ndenumerate(crop):
        right.text(x, y, str(value), ha="center", va="center", fontsize=6.5, color="black" if value > 128 else "white")
    for ax in (left, right):
        ax.set_xticks([])
        ax.set_yticks([])


def _draw_maps(fig, cell, stage: Stage) -> None:
    ax = fig.add_subplot(cell)
    if stage.kind == "filters":
        limit = float(np.abs(stage.values).max()) or 1.0
        image = _mosaic(np.moveaxis(stage.values, 0, -1))
        ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    else:
        image = _mosaic(stage.values)
        ax.imshow(image, cmap="magma", vmin=0, vmax=float(np.nanmax(np.abs(image))) or 1.0, interpolation="nearest")
    ax.set_title(stage.title, loc="left", fontsize=9)
    ax.axis("off")


def _draw_vector(fig, cell, stage: Stage) -> None:
    ax = fig.add_subplot(cell)
    image = _wrapped(stage.values)
    limit = float(np.nanmax(np.abs(image))) or 1.0
    ax.imshow(image, cmap="RdBu_r" if np.nanmin(image) < 0 else "magma", vmin=-limit if np.nanmin(image) < 0 else 0,
              vmax=limit, aspect="auto", interpolation="nearest")
    if stage.values.size <= 10:
        for i, value in enumerate(stage.values):
            ax.text(i, 0, f"{i}\n{value:.1f}", ha="center", va="center", fontsize=7, color="gray")
    ax.set_title(stage.title, loc="left", fontsize=9)
    ax.axis("off")


def _draw_output(fig, cell, stage: Stage) -> None:
    ax = fig.add_subplot(cell)
    answer = int(stage.values.argmax())
    colors = ["tab:orange" if d == answer else "tab:gray" for d in range(10)]
    ax.bar(range(10), stage.values, color=colors)
    ax.set(xticks=range(10), ylim=(0, 1.05), ylabel="probability")
    ax.get_xticklabels()[answer].set(color="tab:orange", fontweight="bold")
    ax.set_title(stage.title, loc="left", fontsize=9)


READING = ("Read top to bottom. Each convolution slides its small filters over the maps above it\n"
           "and lights up where a filter's pattern is found (strokes, edges, corners);\n"
           "each pooling keeps the strongest response in every 2x2 patch, halving the size.\n"
           "The last maps are flattened into one vector, the dense layers weigh it\n"
           "into ten scores, and softmax turns the scores into probabilities.")

DRAW = {"input": _draw_input, "filters": _draw_maps, "conv": _draw_maps, "pool": _draw_maps,
        "flatten": _draw_vector, "dense": _draw_vector, "output": _draw_output}
ROW_HEIGHT = {"input": 3.4, "filters": 0.9, "conv": 1.0, "pool": 0.8, "flatten": 0.9, "dense": 0.5, "output": 1.6}


def draw(stages: list[Stage], title: str):
    """One tall figure, a row per stage from the pixels to the answer."""
    plt = pyplot()
    heights = [ROW_HEIGHT[s.kind] for s in stages]
    fig = plt.figure(figsize=(11, sum(heights) + 0.8), layout="constrained")
    fig.suptitle(title, fontsize=11)
    for cell, stage in zip(fig.add_gridspec(len(stages), 1, height_ratios=heights), stages):
        DRAW[stage.kind](fig, cell, stage)
    return fig
