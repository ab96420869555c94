"""What a .tflite file needs to say about itself so that any runtime can feed it and read it.

One JSON document (schema below) travels with every exported model twice: as the sidecar
`model_<variant>.json`, and embedded in the .tflite as `metadata.json` inside a zip archive appended
to the flatbuffer (the TFLite Support convention: the runtimes ignore bytes after the flatbuffer).
The embedded copy wins, so a renamed or copied model still describes itself.

Only stdlib and numpy here: the edge reads this on a Pi without TensorFlow.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edge.errors import UserError

SCHEMA = "digitcnn.model"
SCHEMA_VERSION = 1
LABELS = [str(d) for d in range(10)]
VARIANTS = ("float32", "float16", "dynamic", "int8")
PREPROCESSING = {"version": 1, "polarity": "white-on-black", "digit_box": 20, "canvas": 28,
                 "centring": "centre-of-mass"}
EMBEDDED_NAME = "metadata.json"
MAX_METADATA_BYTES = 2**20
"""Metadata bigger than this, unpacked, is refused: an export's is about 8 KB, while a hostile zip
of a few MB can unpack to gigabytes."""
TENSOR_DTYPES = ("float32", "uint8", "int8")
PROBABILITIES, FEATURES = "probabilities", "features"
"""The output names in a model's signature. Find outputs by these names, never by position: in a model
with both, the converter puts `features` (the penultimate layer, which teaching adapts) first."""


LARGEST = 1e6
"""No number in metadata is larger (in magnitude): MNIST models' values are within a few hundred, and
1e308 or a vector of them, well-formed but absurd, would overflow to inf and nan in the arithmetic."""
SMALLEST_SCALE = 1e-6
"""No scale or temperature is smaller: dividing by a smaller one overflows as surely."""
SCALE = f"a number in [{SMALLEST_SCALE:g}, {LARGEST:g}]"


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) <= LARGEST


def _scale(v: Any) -> bool:
    return _number(v) and v >= SMALLEST_SCALE


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _fraction(v: Any) -> bool:
    return _number(v) and 0 <= v <= 1


def _text(v: Any) -> bool:
    return isinstance(v, str) and v != ""


def _sha256(v: Any) -> bool:
    return isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v) is not None


def _shape(rank: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, list) and len(v) == rank and all(_int(d) and d > 0 for d in v)


# (dotted field, test, what the test wants): the whole schema, checked in this order.
_FIELDS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("schema", lambda v: v == SCHEMA, repr(SCHEMA)),
    ("schema_version", lambda v: v == SCHEMA_VERSION, f"{SCHEMA_VERSION} (the version this reader knows)"),
    ("labels", lambda v: isinstance(v, list) and len(v) == 10 and all(map(_text, v)), "a list of 10 strings"),
    ("variant", lambda v: v in VARIANTS, f"one of {', '.join(VARIANTS)}"),
    ("input.shape", _shape(4), "a list of 4 positive integers"),
    ("input.dtype", lambda v: v in TENSOR_DTYPES, f"one of {', '.join(TENSOR_DTYPES)}"),
    ("output.shape", _shape(2), "a list of 2 positive integers"),
    ("output.dtype", lambda v: v in TENSOR_DTYPES, f"one of {', '.join(TENSOR_DTYPES)}"),
    ("output.kind", lambda v: v == "probabilities", "'probabilities'"),
    ("pixel_scaling.scale", _scale, SCALE),
    ("pixel_scaling.offset", _number, f"a number in [-{LARGEST:g}, {LARGEST:g}]"),
    ("preprocessing.version", lambda v: _int(v) and v >= 1, "a positive integer"),
    ("preprocessing.polarity", lambda v: v == "white-on-black", "'white-on-black'"),
    ("preprocessing.digit_box", lambda v: _int(v) and v > 0, "a positive integer"),
    ("preprocessing.canvas", lambda v: _int(v) and v > 0, "a positive integer"),
    ("preprocessing.centring", _text, "a non-empty string"),
    ("source.run_dir", _text, "a non-empty string"),
    ("source.model", _text, "a non-empty string"),
    ("source.params", lambda v: _int(v) and v > 0, "a positive integer"),
    ("source.test_accuracy", _fraction, "a number in [0, 1]"),
    ("verification.images", lambda v: _int(v) and v > 0, "a positive integer"),
    ("verification.test_accuracy", _fraction, "a number in [0, 1]"),
    ("verification.keras_test_accuracy", _fraction, "a number in [0, 1]"),
    ("verification.agreement", _fraction, "a number in [0, 1]"),
    ("verification.max_abs_diff", lambda v: v is None or _number(v), "a number, or null for quantized output"),
    ("sha256", _sha256, "64 lowercase hex digits"),
)

# Optional (exports before issue 14 lack them): what it takes to train the same weights again.
_RECIPE_FIELDS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("source.config", lambda v: isinstance(v, dict) and v != {}, "a JSON object of training settings"),
    ("source.weights_sha256", _sha256, "64 lowercase hex digits"),
    ("source.data_sha256", _sha256, "64 lowercase hex digits"),
)


def _numbers(v: Any, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(map(_number, v))


def _matrix(v: Any, rows: int, cols: int) -> bool:
    return isinstance(v, list) and len(v) == rows and all(_numbers(row, cols) for row in v)


def _feature_fields(d: int) -> tuple[tuple[str, Callable[[Any], bool], str], ...]:
    """The optional `features` output (the penultimate layer) of a model with d features, and what
    export measured of it on MNIST training images, where teaching starts (edge/adapt.py)."""
    return (
        ("features.dtype", lambda v: v in TENSOR_DTYPES, f"one of {', '.join(TENSOR_DTYPES)}"),
        ("features.mean", lambda v: _numbers(v, d), f"a list of {d} numbers within ±{LARGEST:g}"),
        ("features.class_means", lambda v: _matrix(v, 10, d), f"10 lists of {d} numbers within ±{LARGEST:g}"),
        ("features.class_log_probabilities", lambda v: _matrix(v, 10, 10), "10 lists of 10 numbers"),
    )


def _adaptation_fields(d: int) -> tuple[tuple[str, Callable[[Any], bool], str], ...]:
    """The optional `adaptation` of a taught model (edge/adapt.py): samples per digit and the fitted head."""
    return (
        ("adaptation.version", lambda v: v == 1, "1"),
        ("adaptation.samples", lambda v: isinstance(v, list) and len(v) == 10 and all(_int(n) and n >= 0 for n in v)
         and sum(v) > 0, "10 counts, not all zero"),
        ("adaptation.center", lambda v: _numbers(v, d), f"a list of {d} numbers within ±{LARGEST:g}"),
        ("adaptation.weights", lambda v: _matrix(v, 10, d), f"10 lists of {d} numbers within ±{LARGEST:g}"),
    )


_CONFIDENCE_FIELDS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("confidence.temperature", _scale, SCALE),
    ("confidence.threshold", _fraction, "a number in [0, 1]"),
    ("confidence.images", lambda v: _int(v) and v > 0, "a positive integer"),
)
"""The optional rule for "no digit" (edge/confidence.py): the temperature fitted on `images` validation
images, and the calibrated probability the top answer needs. Models exported before it answer as they
always did (temperature 1, threshold 0.5)."""


def _trained_on(v: Any) -> bool:
    return isinstance(v, dict) and _text(v.get("name")) and _sha256(v.get("sha256")) and _int(v.get("images")) \
        and v["images"] > 0


_TRAINING_FIELDS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("training.data", lambda v: isinstance(v, list) and v != [] and all(map(_trained_on, v)),
     "a non-empty list of {name, sha256, images} objects"),
    ("training.styles.share", _fraction, "a number in [0, 1]"),
    ("training.styles.names", lambda v: isinstance(v, list) and all(map(_text, v)), "a list of non-empty strings"),
    ("training.negatives.share", _fraction, "a number in [0, 1]"),
    ("training.negatives.images", lambda v: _int(v) and v >= 0, "a whole number, 0 or more"),
    ("training.negatives.sha256", _sha256, "64 lowercase hex digits"),
    ("training.negatives.families", lambda v: isinstance(v, list) and all(map(_text, v)), "a list of non-empty strings"),
    ("training.negatives.held_out", lambda v: isinstance(v, list) and all(map(_text, v)), "a list of non-empty strings"),
)
"""The optional record of what the run trained on (its metrics.json's `training`): each data set with its
sha256 and the images taken from it, the handwriting styles drawn (digitcnn/styles.py) and the
generated shapes that are not digits taught as unsure (digitcnn/negatives.py). Models exported before
it have none."""


STAGE_KINDS = ("conv", "max_pool", "dense", "softmax")


def _stage_fields(i: int, kind: str) -> tuple[tuple[str, Callable[[Any], bool], str], ...]:
    """One layer of the optional `stages` (export/stages.py): which output holds its result, as a spec
    like `output`'s, and the tensors and options that redo its arithmetic (edge/inside.py)."""
    at = f"stages.layers.{i}"
    pairs = lambda v: isinstance(v, list) and len(v) == 2 and all(_int(d) and d > 0 for d in v)  # noqa: E731
    fields = [(f"{at}.name", _text, "a non-empty string"), (f"{at}.output", _text, "a non-empty string"),
              (f"{at}.shape", lambda v: isinstance(v, list) and 2 <= len(v) <= 4 and all(_int(d) and d > 0 for d in v),
               "a list of 2 to 4 positive integers"),
              (f"{at}.dtype", lambda v: v in TENSOR_DTYPES, f"one of {', '.join(TENSOR_DTYPES)}"),
              (f"{at}.input_tensor", lambda v: _int(v) and v >= 0, "a tensor index")]
    if kind in ("conv", "dense"):
        fields += [(f"{at}.{t}", lambda v: _int(v) and v >= 0, "a tensor index")
                   for t in ("weights_tensor", "bias_tensor")]
        fields.append((f"{at}.activation", lambda v: v in ("none", "relu", "relu6"), "none, relu or relu6"))
    if kind in ("conv", "max_pool"):
        fields += [(f"{at}.kernel", pairs, "2 positive integers"), (f"{at}.stride", pairs, "2 positive integers"),
                   (f"{at}.padding", lambda v: v in ("same", "valid"), "same or valid")]
    return tuple(fields)


_STAGES_FIELDS: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("stages.verified_images", lambda v: _int(v) and v > 0, "a positive integer"),
    ("stages.layers", lambda v: isinstance(v, list) and v != [] and all(isinstance(s, dict) for s in v),
     "a non-empty list of objects"),
)


def _check_stages(meta: dict, where: str) -> None:
    _check(meta, _STAGES_FIELDS, where)
    for i, stage in enumerate(meta["stages"]["layers"]):
        kind = stage.get("kind")
        if kind not in STAGE_KINDS:
            raise _fail(where, f"stages.layers.{i}.kind", f"one of {', '.join(STAGE_KINDS)}", kind)
        _check({"stages": {"layers": {str(i): stage}}}, _stage_fields(i, kind), where)
        _check_quantization({"stage": stage}, "stage", f"{where}: stages.layers.{i}")


def _field(meta: Any, dotted: str, where: str) -> Any:
    value = meta
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            raise UserError(f"{where}: missing field {dotted}")
        value = value[key]
    return value


def _fail(where: str, dotted: str, wants: str, value: Any) -> UserError:
    shown = repr(value)
    return UserError(f"{where}: {dotted} must be {wants}, not {shown[:60]}{'...' if len(shown) > 60 else ''}")


def _check_quantization(meta: dict, tensor: str, where: str) -> None:
    """Integer tensors need a scale and zero point in their dtype's range; float tensors have none."""
    spec = meta[tensor]
    scale, zero_point = _field(meta, f"{tensor}.scale", where), _field(meta, f"{tensor}.zero_point", where)
    if spec["dtype"] == "float32":
        if scale is not None or zero_point is not None:
            raise _fail(where, f"{tensor}.scale and zero_point", "null for a float32 tensor", (scale, zero_point))
        return
    if not _scale(scale):
        raise _fail(where, f"{tensor}.scale", f"{SCALE} for a {spec['dtype']} tensor", scale)
    info = np.iinfo(spec["dtype"])
    if not (_int(zero_point) and info.min <= zero_point <= info.max):
        raise _fail(where, f"{tensor}.zero_point", f"an integer in [{info.min}, {info.max}]", zero_point)


def _check(meta: dict, fields: tuple[tuple[str, Callable[[Any], bool], str], ...], where: str) -> None:
    for dotted, test, wants in fields:
        value = _field(meta, dotted, where)
        if not test(value):
            raise _fail(where, dotted, wants, value)


def validate_metadata(meta: Any, where: str = "model metadata") -> dict:
    """Return `meta` if it follows the schema; else raise a one-line UserError naming the field."""
    if not isinstance(meta, dict):
        raise UserError(f"{where}: must be a JSON object, not {type(meta).__name__}")
    _check(meta, _FIELDS, where)
    for tensor in ("input", "output"):
        _check_quantization(meta, tensor, where)
    if meta["output"]["shape"][1] != len(meta["labels"]):
        raise UserError(f"{where}: output.shape {meta['output']['shape']} does not give one score per label")
    if "config" in meta["source"]:
        _check(meta, _RECIPE_FIELDS, where)
    # Optional: models exported before teaching existed have no features, and only taught models adapt.
    if "features" in meta or "adaptation" in meta:
        _check(meta, (("features.shape", _shape(2), "a list of 2 positive integers"),), where)
        _check(meta, _feature_fields(meta["features"]["shape"][1]), where)
        _check_quantization(meta, "features", where)
    if "adaptation" in meta:
        _check(meta, _adaptation_fields(meta["features"]["shape"][1]), where)
    if "confidence" in meta:  # models exported before the calibrated rule have none
        _check(meta, _CONFIDENCE_FIELDS, where)
    if "stages" in meta:  # models exported before the Inside view have none
        _check_stages(meta, where)
    if "training" in meta:  # models exported before the run recorded it have none
        _check(meta, _TRAINING_FIELDS, where)
    return meta


def check_pixel_scaling(obj: Any, where: str) -> dict:
    """The {scale, offset} mapping from uint8 pixels to model input, as floats, or a UserError."""
    _check({"pixel_scaling": obj}, tuple(f for f in _FIELDS if f[0].startswith("pixel_scaling.")), where)
    return {"scale": float(obj["scale"]), "offset": float(obj["offset"])}


def build_metadata(*, variant: str, input: dict, output: dict, features: dict, confidence: dict, pixel_scaling: dict,
                   source: dict, verification: dict, flatbuffer: bytes, stages: dict | None = None,
                   training: dict | None = None) -> dict:
    """The full, validated metadata of one exported flatbuffer (`input`/`output`/`features`: shape,
    dtype, scale, zero_point as the interpreter reports them; `confidence`: the "no digit" rule;
    `stages`: each layer's output, for int8 models, export/stages.py; `training`: what the run trained
    on, as its metrics.json records it)."""
    meta = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "labels": list(LABELS),
        "variant": variant,
        "input": dict(input),
        "output": {**output, "kind": "probabilities"},
        "features": dict(features),
        "confidence": dict(confidence),
        "pixel_scaling": dict(pixel_scaling),
        "preprocessing": dict(PREPROCESSING),
        "source": dict(source),
        "verification": dict(verification),
        "sha256": sha256(flatbuffer),
    }
    if stages is not None:
        meta["stages"] = dict(stages)
    if training is not None:
        meta["training"] = dict(training)
    return validate_metadata(meta)


def sha256(model: bytes) -> str:
    """sha256 of the bare flatbuffer, so embedding metadata does not change a model's identity."""
    return hashlib.sha256(bare_flatbuffer(model)).hexdigest()


_DAMAGED_ZIP = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError)
"""What zipfile raises on damaged or hostile bytes (a bad CRC, a broken deflate stream, an offset
before the file's start, an unknown version, an encryption flag)."""


def _archive(model: bytes, where: str) -> zipfile.ZipFile | None:
    """The zip appended to the flatbuffer, or None if there is none; a damaged one is a UserError."""
    buffer = io.BytesIO(model)
    if not zipfile.is_zipfile(buffer):
        return None
    try:
        return zipfile.ZipFile(buffer)
    except _DAMAGED_ZIP as e:
        raise UserError(f"{where}: its embedded metadata archive is damaged ({e}); re-export the model") from None


def _zip_entries(model: bytes) -> list[zipfile.ZipInfo]:
    archive = _archive(model, "model")
    if archive is None:
        return []
    with archive:
        return archive.infolist()


def bare_flatbuffer(model: bytes) -> bytes:
    """The flatbuffer without any appended zip archive (zipfile reports absolute header offsets)."""
    entries = _zip_entries(model)
    return model[: min(e.header_offset for e in entries)] if entries else model


def embed_metadata(model: bytes, meta: dict) -> bytes:
    """The flatbuffer followed by a zip holding metadata.json; replaces any earlier embedded copy.

    The zip entry has a fixed timestamp, so equal inputs give equal files, and is deflated: the
    feature statistics that teaching needs are several KB of numbers.
    """
    flatbuffer = bare_flatbuffer(model)
    validate_metadata(meta)
    if meta["sha256"] != sha256(flatbuffer):
        raise UserError("metadata sha256 does not match the model it is being embedded in")
    buffer = io.BytesIO(flatbuffer)
    buffer.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buffer, "a") as zf:
        zf.writestr(zipfile.ZipInfo(EMBEDDED_NAME, date_time=(1980, 1, 1, 0, 0, 0)),
                    json.dumps(meta, sort_keys=True, separators=(",", ":")),
                    compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buffer.getvalue()


def read_embedded(model: bytes, where: str = "model") -> dict | None:
    """The embedded metadata as stored (not validated), or None if the file carries none. A damaged
    or oversized archive entry is a UserError: the model then cannot be trusted to describe itself."""
    archive = _archive(model, where)
    if archive is None:
        return None
    with archive:
        try:
            entry = archive.getinfo(EMBEDDED_NAME)
        except KeyError:
            return None
        if entry.file_size > MAX_METADATA_BYTES:
            raise UserError(f"{where}: embedded {EMBEDDED_NAME} unpacks to {entry.file_size:,} bytes, "
                            f"more than metadata ever needs ({MAX_METADATA_BYTES:,})")
        try:
            raw = archive.read(entry)
        except _DAMAGED_ZIP as e:
            raise UserError(f"{where}: embedded {EMBEDDED_NAME} is damaged ({e}); re-export the model") from None
    return _parse_json(raw, f"{where}: embedded {EMBEDDED_NAME}")


def _parse_json(raw: str | bytes, where: str) -> Any:
    """json.loads, with any malformed input (nesting too deep for the parser too) a one-line UserError."""
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{where} is not valid JSON ({e})") from None
    except RecursionError:
        raise UserError(f"{where} is not valid metadata (nested too deeply)") from None


def sidecar_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def load_metadata(model_path: str | Path) -> dict:
    """Metadata of a .tflite file: the embedded copy, else the JSON sidecar beside it.

    Either must describe exactly this flatbuffer (sha256), so a stale sidecar is refused.
    """
    path = Path(model_path)
    try:
        model = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    meta, where = read_embedded(model, str(path)), f"{path} (embedded metadata)"
    if meta is None:
        sidecar = sidecar_path(path)
        where = str(sidecar)
        if sidecar.exists() and (not sidecar.is_file() or sidecar.stat().st_size > MAX_METADATA_BYTES):
            raise UserError(f"{sidecar}: not a metadata file (a regular file of at most {MAX_METADATA_BYTES:,} bytes)")
        try:
            text = sidecar.read_text()
        except FileNotFoundError:
            raise UserError(f"{path}: no embedded metadata and no {sidecar.name} beside it; "
                            "re-export it with `cli.py export`") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"{sidecar}: not readable JSON ({e})") from None
        meta = _parse_json(text, str(sidecar))
    validate_metadata(meta, where)
    if meta["sha256"] != sha256(model):
        raise UserError(f"{where}: describes another model (sha256 differs); re-export it with `cli.py export`")
    return meta


def model_input(pixels: np.ndarray, meta: dict) -> np.ndarray:
    """uint8 white-on-black pixels, (28, 28) or (n, 28, 28) -> the model's (n, 28, 28, 1) input.

    Pixels become model values by `meta["pixel_scaling"]`, then the input tensor's own quantization
    (none for float models). `meta` may be any dict holding the pixel_scaling and input fields.
    """
    spec, scaling = meta["input"], meta["pixel_scaling"]
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3) or pixels.shape[-2:] != tuple(spec["shape"][1:3]):
        raise ValueError(f"expected uint8 pixels of shape (n,) {tuple(spec['shape'][1:3])}, "
                         f"got {pixels.dtype} {pixels.shape}")
    pixels = pixels.reshape(-1, *spec["shape"][1:])
    if spec["scale"] is None:
        return (pixels.astype(np.float32) * np.float32(scaling["scale"]) + np.float32(scaling["offset"])).astype(
            spec["dtype"])
    # Quantized input: q = pixel * gain + shift. The usual int8 export (scale 1/255, zero point 0 for
    # 1/255 pixel scaling) makes that the identity: raw pixels go straight in, with no copy.
    gain = scaling["scale"] / spec["scale"]
    shift = scaling["offset"] / spec["scale"] + spec["zero_point"]
    if spec["dtype"] == "uint8" and abs(gain - 1) < 1e-6 and abs(shift) < 1e-6:
        return pixels
    info = np.iinfo(spec["dtype"])
    return np.clip(np.round(pixels * gain + shift), info.min, info.max).astype(spec["dtype"])


def dequantize(values: np.ndarray, spec: dict) -> np.ndarray:
    """A raw output tensor -> float32 values, by its spec's scale and zero point (none for floats)."""
    values = np.asarray(values, dtype=np.float32)
    return values if spec["scale"] is None else (values - spec["zero_point"]) * np.float32(spec["scale"])


def probabilities(output: np.ndarray, meta: dict) -> np.ndarray:
    """The model's raw output tensor -> float32 class probabilities, dequantized if need be."""
    return dequantize(output, meta["output"])
