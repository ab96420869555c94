"""Keras logits model -> LiteRT flatbuffers: one converter setup per variant, builtin ops only.

The route is Keras ExportArchive (a SavedModel with one fixed-shape endpoint) -> TFLiteConverter.
It gives the same lean graph as `from_keras_model` without its chatter, and unlike Keras'
`export(format="litert")` no dynamic batch (which LiteRT.js rejects) nor Shape/Pack ops.
TensorFlow is imported inside the functions, so a bad path fails before its slow import.
"""

from __future__ import annotations

import math
import tempfile

import numpy as np

from edge.metadata import FEATURES, PROBABILITIES, VARIANTS
from export.source import INPUT_SHAPE

OUTPUT_SHAPE = [1, 10]


def inference_model(model):
    """The model as it ships: probabilities out, and any batch size after resize_tensor_input.

    A second output, `features`, is the input of the last (Dense) layer: the embedding that
    teaching adapts (edge/adapt.py). Keras' Flatten reshapes to (traced batch, n), baking batch 1
    into the graph; a reshape to (-1, n) keeps the fixed [1, 28, 28, 1] signature and still lets
    Python run whole batches.
    """
    import keras

    class BatchFlatten(keras.layers.Layer):
        def call(self, x):
            return keras.ops.reshape(x, (-1, math.prod(x.shape[1:])))

    def clone(layer):  # returning a layer itself shares it, weights included
        return BatchFlatten(name=layer.name) if isinstance(layer, keras.layers.Flatten) else layer

    body = keras.models.clone_model(model, clone_function=clone)
    *layers, last = body.layers
    if not isinstance(last, keras.layers.Dense):
        raise ValueError(f"the model must end in a Dense layer (its input is the features output), not {last}")
    image = keras.Input(INPUT_SHAPE[1:], name="image")
    features = image
    for layer in layers:
        features = layer(features)
    # Every new layer and model named, so that the tensor names in the flatbuffer do not count the models
    # built before in this process ("functional_18" became "functional_19" when `ship_model.py check` trained first).
    probabilities = keras.layers.Softmax(name="softmax")(last(features))
    return keras.Model(image, {PROBABILITIES: probabilities, FEATURES: features}, name="digitcnn")


def _write_saved_model(model, directory: str) -> None:
    import keras
    import tensorflow as tf

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda image: model(image, training=False),
                         input_signature=[tf.TensorSpec(INPUT_SHAPE, tf.float32, name="image")])
    archive.write_out(directory, verbose=False)


def _converter(saved_model: str, variant: str, calibration: np.ndarray | None):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops: any runtime
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # alone: dynamic-range int8 weights
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if variant == "int8":
        converter.representative_dataset = lambda: ([image[None]] for image in calibration)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # uint8, not int8, at the edges: LiteRT.js in browsers has no int8 tensors.
        converter.inference_input_type = converter.inference_output_type = tf.uint8
    return converter


def convert_variants(model, variants: list[str], calibration: np.ndarray | None = None) -> dict[str, bytes]:
    """Bare flatbuffers of `model` (Keras, logits out) per variant.

    `calibration`: float model inputs (n, 28, 28, 1) of representative training images, for int8.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or ("int8" in variants and calibration is None):
        raise ValueError(f"variants {variants} (known: {', '.join(VARIANTS)}); int8 needs calibration images")
    with tempfile.TemporaryDirectory(prefix="digitcnn-export-") as saved_model:
        _write_saved_model(inference_model(model), saved_model)
        return {v: _converter(saved_model, v, calibration).convert() for v in variants}


def check_io(io: dict, variant: str, pixel_scaling: dict) -> list[str]:
    """How a flatbuffer's tensors break the contract, if they do: fixed shapes; float32 in and out, or
    for int8 uint8 in and out with the input quantized exactly as pixel_scaling maps raw pixels."""
    want = "uint8" if variant == "int8" else "float32"
    problems = [f"{t} is {io[t]['dtype']}, not {want}" for t in ("input", "output", "features")
                if io[t]["dtype"] != want]
    if io["features"]["shape"][0] != 1 or len(io["features"]["shape"]) != 2:
        problems.append(f"features shape is {io['features']['shape']}, not [1, n]")
    for tensor, shape in (("input", INPUT_SHAPE), ("output", OUTPUT_SHAPE)):
        if io[tensor]["shape"] != shape:
            problems.append(f"{tensor} shape is {io[tensor]['shape']}, not {shape}")
    if want == "uint8":
        scale, zero_point = pixel_scaling["scale"], (0.0 - pixel_scaling["offset"]) / pixel_scaling["scale"]
        got_scale, got_zero_point = io["input"]["scale"], io["input"]["zero_point"]
        if not (math.isclose(got_scale, scale, rel_tol=1e-6) and got_zero_point == zero_point):
            problems.append(f"the converter quantized the input with scale {got_scale:.9g}, zero point "
                            f"{got_zero_point}, but raw 0-255 pixels need scale {scale:.9g}, zero point "
                            f"{zero_point:g} (from pixel_scaling)")
    return problems
