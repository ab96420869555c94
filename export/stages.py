"""Make a converted model show its work: each layer's int8 result becomes an extra, named output.

The Inside view (web/inside/) and `digitcnn explain` draw what the device computes, so the numbers
must come from the model file itself, not from a float re-implementation. This adds, for every
convolution, pooling and dense layer, one QUANTIZE op (int8 -> uint8, same scale, zero point + 128:
exact, and LiteRT.js has no int8 tensors) writing a new subgraph and signature output. The existing
ops and tensors are untouched, so the probabilities stay bit-identical (export verifies it on the whole
test set). The converter fuses ReLU into the op before it: each stage is the layer's output after its
activation. The same function serves `export` and `tools/ship_model.py restage`, so a re-shipped
model and a fresh export of the same weights are the same bytes.
"""

from __future__ import annotations

import numpy as np

from edge.errors import UserError
from edge.metadata import FEATURES, PROBABILITIES, model_input

_KINDS = {"CONV_2D": "conv", "MAX_POOL_2D": "max_pool", "FULLY_CONNECTED": "dense", "SOFTMAX": "softmax"}
_ACTIVATIONS = {0: "none", 1: "relu", 3: "relu6"}
_PADDING = {0: "same", 1: "valid"}


def _builtin_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def add_stage_outputs(flatbuffer: bytes) -> tuple[bytes, list[dict]]:
    """The bare flatbuffer with each layer's output as an extra uint8 output, and the stages'
    descriptions for the metadata (quantization is filled in by export.verify.tensor_specs)."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(flatbuffer))
    graph, signature = model.subgraphs[0], model.signatureDefs[0]
    names = _builtin_names()
    codes = [names[max(c.builtinCode, c.deprecatedBuiltinCode)] for c in model.operatorCodes]
    if any(t.name.decode().startswith("stage_") for t in signature.outputs):
        raise ValueError("the model already has stage outputs")
    named = {t.tensorIndex: t.name.decode() for t in signature.outputs}
    # A layer already quantized to a named output (features, probabilities) keeps that output.
    quantized_to = {int(op.inputs[0]): named[int(op.outputs[0])] for op in graph.operators
                    if codes[op.opcodeIndex] == "QUANTIZE" and int(op.outputs[0]) in named}
    quantize = codes.index("QUANTIZE")
    stages, counts, new_ops = [], {}, []
    for op in list(graph.operators):
        kind = _KINDS.get(codes[op.opcodeIndex])
        if kind is None:
            continue
        counts[kind] = counts.get(kind, 0) + 1
        name = f"{kind}_{counts[kind]}"
        source = int(op.outputs[0])
        output = quantized_to.get(source)
        if output is None:
            tensor = graph.tensors[source]
            if tensor.type != schema.TensorType.INT8:
                raise ValueError(f"layer {name} writes {tensor.type}, not int8: only int8 models get stages")
            out = schema.TensorT()
            out.shape, out.type, out.name = list(tensor.shape), schema.TensorType.UINT8, f"stage_{name}".encode()
            out.quantization = schema.QuantizationParametersT()
            out.quantization.scale = list(tensor.quantization.scale)
            out.quantization.zeroPoint = [int(z) + 128 for z in tensor.quantization.zeroPoint]
            out.buffer = len(model.buffers)
            model.buffers.append(schema.BufferT())
            graph.tensors.append(out)
            index = len(graph.tensors) - 1
            step = schema.OperatorT()
            step.opcodeIndex, step.inputs, step.outputs = quantize, [source], [index]
            new_ops.append(step)
            graph.outputs = [*graph.outputs, index]
            entry = schema.TensorMapT()
            entry.name, entry.tensorIndex = f"stage_{name}".encode(), index
            signature.outputs.append(entry)
            output = f"stage_{name}"
        stages.append(_describe(name, kind, op, output, graph))
    graph.operators.extend(new_ops)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), stages


def _describe(name: str, kind: str, op, output: str, graph) -> dict:
    """What a reader needs to redo one stage's arithmetic from the model's own tensors."""
    options = op.builtinOptions
    stage = {"name": name, "kind": kind, "output": output, "input_tensor": int(op.inputs[0])}
    if kind in ("conv", "dense"):
        stage.update(weights_tensor=int(op.inputs[1]), bias_tensor=int(op.inputs[2]),
                     activation=_ACTIVATIONS[options.fusedActivationFunction])
    if kind == "conv":
        weights = graph.tensors[int(op.inputs[1])]
        stage.update(kernel=[int(weights.shape[1]), int(weights.shape[2])],
                     stride=[options.strideH, options.strideW], padding=_PADDING[options.padding])
    if kind == "max_pool":
        stage.update(kernel=[options.filterHeight, options.filterWidth], stride=[options.strideH, options.strideW],
                     padding=_PADDING[options.padding])
    return stage


def with_stages(flatbuffer: bytes, meta: dict, pixels: np.ndarray) -> tuple[bytes, dict]:
    """`flatbuffer` with its stage outputs, and the metadata's `stages` block; ValueError unless its
    raw probabilities and features are bit-identical to the original's on every image of `pixels`
    (uint8, n x 28 x 28): a UserError then. `meta` holds pixel_scaling and input."""
    from export.verify import run, tensor_specs

    staged, layers = add_stage_outputs(flatbuffer)
    inputs = model_input(pixels, meta)
    before, after = (run(m, inputs, outputs=(PROBABILITIES, FEATURES)) for m in (flatbuffer, staged))
    if not all(np.array_equal(before[k], after[k]) for k in before):
        raise UserError("adding the stage outputs changed the model's answers; export without them is wrong too: "
                        "report it")
    specs = tensor_specs(staged, [layer["output"] for layer in layers])
    return staged, {"verified_images": len(pixels), "layers": [{**layer, **specs[layer["output"]]} for layer in layers]}
