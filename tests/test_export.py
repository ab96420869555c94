"""Export: every variant converts, loads in ai-edge-litert, batches and agrees with Keras; the
metadata travels inside the file; failures leave nothing behind and say so on one line."""

from __future__ import annotations

import copy
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from ai_edge_litert.interpreter import Interpreter
from conftest import run_cli
from edge import metadata as md
from edge.adapt import unit
from edge.errors import UserError
from edge.runner import named_outputs


@pytest.fixture(scope="module")
def exported(small_run: Path, mnist_npz: Path, tmp_path_factory) -> tuple[Path, str]:
    """Every variant of the small run, exported once: (output folder, printed table)."""
    out = tmp_path_factory.mktemp("export")
    result = run_cli("export", str(small_run), "--quantize", "all", "--out", str(out), "--data", str(mnist_npz))
    return out, result.stdout


@pytest.fixture(scope="module")
def test_images(mnist_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(mnist_npz) as npz:
        return npz["x_test"], npz["y_test"]


def _outputs(model: bytes, inputs: np.ndarray, output: str = md.PROBABILITIES) -> np.ndarray:
    """Raw tensors of the named output for a whole batch at once, batch size set by resize_tensor_input."""
    interpreter = Interpreter(model_content=model)
    detail = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(detail["index"], inputs.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(detail["index"], inputs)
    interpreter.invoke()
    return interpreter.get_tensor(named_outputs(interpreter, "model")[output]["index"])


def test_every_variant_is_written_with_its_row_in_the_table(exported):
    out, table = exported
    names = {f"model_{v}.{ext}" for v in md.VARIANTS for ext in ("tflite", "json")}
    assert {p.name for p in out.iterdir()} == names  # and no temporary files left over
    for variant in md.VARIANTS:
        path = out / f"model_{variant}.tflite"
        row = next(line for line in table.splitlines() if line.startswith(variant))
        assert f"{path.stat().st_size:,}" in row and str(path) in row


def test_every_variant_loads_and_runs_batches(exported, test_images):
    out, _ = exported
    pixels, _ = test_images
    for variant in md.VARIANTS:
        model = (out / f"model_{variant}.tflite").read_bytes()
        meta = md.load_metadata(out / f"model_{variant}.tflite")
        interpreter = Interpreter(model_content=model)
        assert interpreter.get_input_details()[0]["shape_signature"].tolist() == [1, 28, 28, 1]
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), (variant, ops)  # builtins only
        inputs = md.model_input(pixels[:7], meta)
        batched = _outputs(model, inputs)
        one_by_one = np.concatenate([_outputs(model, inputs[i : i + 1]) for i in range(7)])
        assert batched.shape == (7, 10), variant
        np.testing.assert_allclose(batched.astype(np.float32), one_by_one.astype(np.float32), atol=1e-5,
                                   err_msg=variant)
        np.testing.assert_allclose(md.probabilities(batched, meta).sum(axis=1), 1.0, atol=0.03, err_msg=variant)


def test_int8_takes_raw_pixels_and_gives_uint8(exported, test_images, small_run):
    out, _ = exported
    pixels, _ = test_images
    model = (out / "model_int8.tflite").read_bytes()
    interpreter = Interpreter(model_content=model)
    (inp,), outputs = interpreter.get_input_details(), named_outputs(interpreter, "int8")
    assert inp["dtype"] == np.uint8 and {o["dtype"] for o in outputs.values()} == {np.uint8}
    scaling = json.loads((small_run / "metrics.json").read_text())["pixel_scaling"]
    assert inp["quantization"][0] == pytest.approx(scaling["scale"], rel=1e-6)
    assert inp["quantization"][1] == round(-scaling["offset"] / scaling["scale"]) == 0
    meta = md.load_metadata(out / "model_int8.tflite")
    assert np.array_equal(md.model_input(pixels[:50], meta), pixels[:50, :, :, None])  # raw 0-255 in
    for variant in ("float32", "float16", "dynamic"):
        details = Interpreter(model_path=str(out / f"model_{variant}.tflite")).get_input_details()[0]
        assert details["dtype"] == np.float32, variant


def test_int8_and_float32_agree_with_keras(exported, test_images, small_run):
    import keras

    out, _ = exported
    pixels, labels = test_images
    pixels, labels = pixels[:2000], labels[:2000]
    meta = md.load_metadata(out / "model_float32.tflite")
    keras_model = keras.saving.load_model(small_run / "model.keras", compile=False)
    keras_probs = keras.ops.convert_to_numpy(keras.ops.softmax(keras_model(md.model_input(pixels, meta))))
    float32 = md.probabilities(_outputs((out / "model_float32.tflite").read_bytes(), md.model_input(pixels, meta)),
                               meta)
    assert np.abs(float32 - keras_probs).max() < 1e-5
    int8_meta = md.load_metadata(out / "model_int8.tflite")
    int8 = _outputs((out / "model_int8.tflite").read_bytes(), md.model_input(pixels, int8_meta))
    # The small model (about 93%) has many near-ties that uint8 probabilities, in steps of 1/256,
    # cannot split; a fully trained model agrees on more than 99.8% (bench/export.py).
    assert np.mean(int8.argmax(axis=1) == keras_probs.argmax(axis=1)) >= 0.99
    # The export's own check on the full test set, as recorded in the metadata (the same near-ties
    # move this weak model's accuracy by a few tenths of a point either way).
    scores = int8_meta["verification"]
    assert scores["images"] == 10_000 and scores["agreement"] >= 0.99
    assert abs(scores["test_accuracy"] - scores["keras_test_accuracy"]) <= 0.005
    assert md.load_metadata(out / "model_float32.tflite")["verification"]["agreement"] == 1.0


def test_features_are_the_penultimate_layer_found_by_name(exported, test_images, small_run):
    """Every variant's second output is the last Dense layer's input, described with the statistics
    teaching starts from; the converter lists it first, so only its name finds it."""
    import keras

    out, _ = exported
    pixels, labels = test_images
    keras_model = keras.saving.load_model(small_run / "model.keras", compile=False)
    penultimate = keras.Model(keras_model.inputs[0], keras_model.layers[-1].input)
    meta = md.load_metadata(out / "model_float32.tflite")
    inputs = md.model_input(pixels[:50], meta)
    expected = keras.ops.convert_to_numpy(penultimate(inputs))
    model = (out / "model_float32.tflite").read_bytes()
    np.testing.assert_allclose(_outputs(model, inputs, md.FEATURES), expected, atol=1e-4)
    assert Interpreter(model_content=model).get_output_details()[0]["shape"].tolist() == [1, expected.shape[1]]
    for variant in md.VARIANTS:
        features = md.load_metadata(out / f"model_{variant}.tflite")["features"]
        assert features["shape"] == [1, expected.shape[1]] and len(features["class_means"]) == 10
        means = np.array(features["class_means"])
        np.testing.assert_allclose(np.linalg.norm(means, axis=1), 1, atol=1e-3)
        # Each digit's mean direction is nearest its own digit's images (the anchors teaching uses).
        found = md.dequantize(_outputs((out / f"model_{variant}.tflite").read_bytes(),
                                       md.model_input(pixels[:500], md.load_metadata(out / f"model_{variant}.tflite")),
                                       md.FEATURES), features)
        assert np.mean((unit(found, np.array(features["mean"])) @ means.T).argmax(axis=1) == labels[:500]) > 0.8


def test_the_flatbuffer_does_not_depend_on_the_models_built_before_it(small_run):
    """Export in a process that trained first (`tools/ship_model.py check`) writes the same bytes as in
    a fresh one: no auto-numbered name of the process's Keras models ends up in the file."""
    import keras

    from export.convert import convert_variants

    model = keras.saving.load_model(small_run / "model.keras", compile=False)
    first = convert_variants(model, ["float32"])["float32"]
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])  # one more model in this process
    assert convert_variants(model, ["float32"])["float32"] == first


def test_small_lenet5_int8_is_under_80_kb(exported):
    out, _ = exported
    assert (out / "model_int8.tflite").stat().st_size <= 80 * 1024


def test_embedded_metadata_round_trips_and_the_file_still_runs(exported, test_images, tmp_path):
    out, _ = exported
    pixels, _ = test_images
    path = out / "model_int8.tflite"
    model = path.read_bytes()
    sidecar = json.loads(md.sidecar_path(path).read_text())
    assert zipfile.is_zipfile(path) and md.read_embedded(model) == sidecar
    bare = md.bare_flatbuffer(model)
    assert len(bare) < len(model) and model.startswith(bare) and md.sha256(model) == sidecar["sha256"]
    inputs = md.model_input(pixels[:20], sidecar)
    assert np.array_equal(_outputs(model, inputs), _outputs(bare, inputs))
    # Alone, the file still describes itself; a bare flatbuffer falls back to its sidecar.
    alone = tmp_path / "renamed.tflite"
    shutil.copy(path, alone)
    assert md.load_metadata(alone) == sidecar
    (tmp_path / "bare.tflite").write_bytes(bare)
    with pytest.raises(UserError, match="no embedded metadata"):
        md.load_metadata(tmp_path / "bare.tflite")
    shutil.copy(md.sidecar_path(path), tmp_path / "bare.json")
    assert md.load_metadata(tmp_path / "bare.tflite") == sidecar
    # A sidecar that belongs to another model is refused, and so is embedding it.
    shutil.copy(md.sidecar_path(out / "model_float32.tflite"), tmp_path / "bare.json")
    with pytest.raises(UserError, match="describes another model"):
        md.load_metadata(tmp_path / "bare.tflite")
    with pytest.raises(UserError, match="sha256"):
        md.embed_metadata(bare, json.loads(md.sidecar_path(out / "model_float32.tflite").read_text()))
    # Embedding again replaces the copy rather than stacking a second archive.
    assert md.embed_metadata(model, sidecar) == model


@pytest.mark.parametrize("change, field", [
    (lambda m: m.pop("pixel_scaling"), "pixel_scaling.scale"),
    (lambda m: m["input"].pop("zero_point"), "input.zero_point"),
    (lambda m: m["input"].update(scale=None), "input.scale"),
    (lambda m: m["input"].update(dtype="int16"), "input.dtype"),
    (lambda m: m["output"].update(kind="logits"), "output.kind"),
    (lambda m: m.update(schema_version=2), "schema_version"),
    (lambda m: m["labels"].pop(), "labels"),
    (lambda m: m["verification"].update(agreement=1.5), "verification.agreement"),
    (lambda m: m.update(sha256="abc"), "sha256"),
    (lambda m: m["features"].pop("mean"), "features.mean"),
    (lambda m: m["features"]["class_means"].pop(), "features.class_means"),
    (lambda m: m["features"].update(shape=[1]), "features.shape"),
    (lambda m: m.update(adaptation={"version": 1, "samples": [0] * 10}), "adaptation.samples"),
    (lambda m: m.update(adaptation={"version": 1, "samples": [1] * 10, "center": m["features"]["mean"],
                                    "weights": [[0.0] * 3] * 10}), "adaptation.weights"),
    (lambda m: m.pop("features") and m.update(adaptation={}), "features.shape"),
    (lambda m: m["training"]["data"][0].update(images=0), "training.data"),
    (lambda m: m["training"]["styles"].update(share=2), "training.styles.share"),
])
def test_bad_metadata_is_a_one_line_error_naming_the_field(exported, change, field):
    out, _ = exported
    meta = json.loads((out / "model_int8.json").read_text())
    assert md.validate_metadata(copy.deepcopy(meta)) == meta
    change(meta)
    with pytest.raises(UserError) as error:
        md.validate_metadata(meta)
    assert field in str(error.value) and "\n" not in str(error.value)


def test_the_model_says_what_its_run_trained_on(exported, small_run):
    """metrics.json's `training` (data sets with their sha256, styles) travels into every export's metadata."""
    out, _ = exported
    training = json.loads((small_run / "metrics.json").read_text())["training"]
    assert training["data"][0]["name"] == "mnist"
    for variant in ("int8", "float32"):
        assert json.loads((out / f"model_{variant}.json").read_text())["training"] == training


def test_float_input_is_scaled_pixels_and_uint8_output_is_dequantized():
    scaling = {"scale": 1 / 127.5, "offset": -1.0}
    pixels = np.zeros((28, 28), np.uint8)
    pixels[0, :3] = [0, 51, 255]
    float_meta = {"pixel_scaling": scaling,
                  "input": {"shape": [1, 28, 28, 1], "dtype": "float32", "scale": None, "zero_point": None}}
    values = md.model_input(pixels, float_meta)
    assert values.dtype == np.float32 and values.shape == (1, 28, 28, 1)
    assert values[0, 0, :3, 0] == pytest.approx([-1.0, -0.6, 1.0])
    int8_meta = {"pixel_scaling": scaling,
                 "input": {"shape": [1, 28, 28, 1], "dtype": "int8", "scale": 0.005, "zero_point": 3},
                 "output": {"dtype": "uint8", "scale": 1 / 256, "zero_point": 0}}
    assert md.model_input(pixels, int8_meta)[0, 0, :3, 0].tolist() == [-128, -117, 127]  # rounded, clipped
    assert md.probabilities(np.array([[0, 128, 255]], np.uint8), int8_meta).tolist() == [[0, 0.5, 255 / 256]]
    with pytest.raises(ValueError):
        md.model_input(pixels.astype(np.float32), float_meta)


def test_a_variant_that_misses_max_drop_leaves_no_file(small_run, mnist_npz, tmp_path):
    # Float32 matches Keras exactly (a drop of 0 points), so only a negative allowance rejects it.
    out = tmp_path / "out"
    out.mkdir()
    for stale in ("model_float32.tflite", "model_float32.json"):  # as if from an earlier export
        (out / stale).write_text("old")
    result = run_cli("export", str(small_run), "--quantize", "float32", "--max-drop", "-0.01", "--out", str(out),
                     "--data", str(mnist_npz), check=False)
    assert result.returncode == 1
    assert "--max-drop -0.01" in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr
    assert "not written" in result.stdout
    assert list(out.iterdir()) == []


def test_pixel_scaling_comes_from_metrics_json(small_run, mnist_npz, tmp_path):
    """A run trained for [-1, 1] inputs: float files carry that scaling; int8 cannot take raw pixels
    for it (zero point 127.5), and says so instead of writing a file."""
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(small_run / "model.keras", run)
    metrics = json.loads((small_run / "metrics.json").read_text())
    metrics["pixel_scaling"] = {"scale": 1 / 127.5, "offset": -1.0}
    (run / "metrics.json").write_text(json.dumps(metrics))
    result = run_cli("export", str(run), "--quantize", "all", "--data", str(mnist_npz), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "int8:" in error and "zero point 127.5" in error
    assert md.load_metadata(run / "model_float32.tflite")["pixel_scaling"] == metrics["pixel_scaling"]
    assert not (run / "model_int8.tflite").exists() and not (run / "model_int8.json").exists()


def _damaged_zip(path: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("config.json", "{not json")


@pytest.mark.parametrize("case, message", [
    ("missing", "no such run directory"),
    ("empty dir", "no model.keras"),
    ("bare keras", "pixel scaling is unknown"),
    ("not a zip", "not a Keras model"),
    ("damaged zip", "not a readable Keras model"),
])
def test_bad_model_is_a_one_line_error(small_run, tmp_path, case, message):
    run = tmp_path / "run"
    run.mkdir()
    target = run
    if case == "missing":
        target = tmp_path / "nowhere"
    elif case == "bare keras":
        target = run / "model.keras"
        shutil.copy(small_run / "model.keras", target)
    elif case in ("not a zip", "damaged zip"):
        shutil.copy(small_run / "metrics.json", run)
        (run / "model.keras").write_bytes((small_run / "model.keras").read_bytes()[:1000])
        if case == "damaged zip":
            _damaged_zip(run / "model.keras")
    result = run_cli("export", str(target), check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.returncode == 1 and "Traceback" not in result.stderr and result.stdout == ""
    assert len(errors) == 1 and errors[0] == result.stderr.strip().splitlines()[-1] and message in errors[0]


def test_export_writes_both_files_or_neither(small_run, tmp_path):
    """A sidecar path that cannot be written (a symlink) is found before the model is written beside it."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "model_int8.json").symlink_to(tmp_path / "elsewhere.json")
    result = run_cli("export", str(small_run), "--quantize", "int8", "--max-drop", "5", "--out", str(out), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (f"Error: {out / 'model_int8.json'}: exists and is not a regular "
                                                      "file; give a file name to write")
    assert not (out / "model_int8.tflite").exists() and not (tmp_path / "elsewhere.json").exists()
