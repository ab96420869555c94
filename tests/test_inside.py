"""Each layer's output, carried by the model file (export/stages.py) and read by the runner (edge/inside.py):
the numbers are the ones the layers compute, the answers are unchanged, and `explain --json` prints them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, messages, run_cli
from edge import metadata as md
from edge.errors import UserError
from edge.inside import Inside
from edge.runner import DigitModel
from edge.shipped import SHIPPED_MODEL


@pytest.fixture(scope="module")
def inside() -> Inside:
    return Inside(DigitModel(SHIPPED_MODEL))


@pytest.fixture(scope="module")
def digits(mnist_npz) -> np.ndarray:
    return np.load(mnist_npz)["x_test"][:8]


def _conv(source: np.ndarray, source_zero_point: int, spec: dict, inside: Inside) -> np.ndarray:
    """The layer redone in numpy from its int8 input and the model's constants, requantized as XNNPACK does."""
    weights = inside.weights[spec["name"]]
    (kh, kw), (sh, sw) = spec["kernel"], spec["stride"]
    h, w, _ = source.shape
    oh, ow = spec["shape"][1:3]
    top = max((oh - 1) * sh + kh - h, 0) // 2 if spec["padding"] == "same" else 0
    left = max((ow - 1) * sw + kw - w, 0) // 2 if spec["padding"] == "same" else 0
    padded = np.zeros((h + kh + sh * oh, w + kw + sw * ow, source.shape[2]), np.int64)
    padded[top:top + h, left:left + w] = source.astype(np.int64) - source_zero_point
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(0, 1))[::sh, ::sw][:oh, :ow]
    accumulator = np.einsum("yxcij,oijc->yxo", windows, weights.values.astype(np.int64)) + weights.bias
    return accumulator


def test_every_stage_is_what_its_layer_computes(inside, digits):
    specs = {s["name"]: s for s in inside.specs}
    meta = inside.model.meta
    for pixels in digits:
        stored = inside.stored(pixels)
        previous = (pixels[..., None], meta["input"]["zero_point"], meta["input"]["scale"])
        for spec in inside.specs:
            values = stored[spec["name"]]
            assert list(values.shape) == spec["shape"][1:] and values.min() >= -128 and values.max() <= 127
            source, zero_point, scale = previous
            if spec["kind"] == "conv":
                accumulator = _conv(source, zero_point, spec, inside)
                out_zero = spec["zero_point"] - 128
                requantized = np.rint(accumulator * (scale * inside.weights[spec["name"]].scales / spec["scale"]))
                assert np.array_equal(np.clip(requantized + out_zero, out_zero, 127), values), spec["name"]
            elif spec["kind"] == "max_pool":
                h, w, c = values.shape
                blocks = source[:2 * h, :2 * w].reshape(h, 2, w, 2, c)
                assert np.array_equal(blocks.max(axis=(1, 3)), values)
            previous = (values, specs[spec["name"]]["zero_point"] - 128, spec["scale"])
        raw = inside.model.outputs(pixels[None])["probabilities"][0]
        assert np.array_equal(inside.real("softmax_1", stored["softmax_1"]), raw)


def test_the_written_out_arithmetic_gives_the_stored_value(inside, digits):
    stored = inside.stored(digits[0])["conv_1"]
    for y, x, c in [(7, 7, 3), (0, 0, 0), (13, 13, 31), (5, 9, 17)]:
        a = inside.arithmetic(digits[0], y, x, c)
        assert np.sum(a["products"]) == pytest.approx(a["sum"], abs=1e-4)
        assert a["sum"] + a["bias"] == pytest.approx(a["total"], abs=1e-5)
        assert a["requantized"] == a["stored"] == stored[y, x, c]
        assert np.allclose(np.array(a["inputs"]) * np.array(a["weights"]), a["products"], atol=1e-5)


def test_the_shipped_model_says_its_answers_were_checked_unchanged(inside):
    stages = inside.model.meta["stages"]
    assert stages["verified_images"] == 10_000
    assert [s["kind"] for s in stages["layers"]] == ["conv", "conv", "max_pool", "conv", "dense", "dense", "softmax"]
    assert inside.multiply_adds() == {"conv_1": 14 * 14 * 32 * 25, "conv_2": 12 * 12 * 64 * 9 * 32,
                                      "conv_3": 4 * 4 * 64 * 9 * 64, "dense_1": 1024 * 64, "dense_2": 640}


def test_export_gives_new_int8_models_their_stages(int8_model):
    meta = md.load_metadata(int8_model)
    assert meta["stages"]["verified_images"] == 10_000
    assert Inside(DigitModel(int8_model)).stored(np.zeros((28, 28), np.uint8))


def test_explain_json_prints_the_runners_stages(inside, digits, tmp_path):
    image = tmp_path / "seven.png"
    Image.fromarray(255 - digits[0]).resize((112, 112)).save(image)
    result = run_cli("explain", str(image), "--json")
    printed = json.loads(result.stdout)
    expected = inside.read(np.array(printed["input"]["pixels"], np.uint8))
    assert printed["digit"] == 7 and printed["stages"] == expected["stages"]
    assert printed["filters"] == expected["filters"] and printed["multiply_adds"] == expected["multiply_adds"]
    assert not list(tmp_path.glob("*.png"))[1:]  # no drawing written


def test_explain_drawing_gives_the_answer_predict_gives(digits, tmp_path):
    """The drawing's answer is the calibrated one under the model's rule that predict and the page show, not
    raw softmax: on a doubtful digit, "no digit" and the same best guess."""
    image = tmp_path / "blend.png"
    Image.fromarray(np.maximum(digits[0], digits[1] // 2)).resize((112, 112)).save(image)  # a 7 with a faint 2
    drawing = tmp_path / "drawn.png"
    drawn = run_cli("explain", str(image), "--out", str(drawing)).stdout.strip()
    predicted = run_cli("predict", str(image)).stdout.strip()
    assert drawn == f"{predicted.removeprefix(f'{image}: ')}  {drawing}" and "no digit" in drawn


def test_explain_json_needs_neither_tensorflow_nor_matplotlib(digits, tmp_path):
    """What a Pi without the training install can run."""
    image = tmp_path / "seven.png"
    Image.fromarray(digits[0]).save(image)
    code = (f"import sys, cli; cli.main.main(['explain', {str(image)!r}, '--json'], standalone_mode=False); "
            "sys.exit(bool({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'matplotlib'}))")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True).returncode == 0


def test_a_model_without_stages_is_a_one_line_error(featureless_model, tmp_path):
    image = tmp_path / "blank.png"
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(image)
    with pytest.raises(UserError, match="exported without its layers' outputs"):
        Inside(DigitModel(featureless_model))
    result = run_cli("explain", str(featureless_model), str(image), "--json", check=False)
    assert result.returncode != 0 and len(messages(result.stderr)) == 1


@pytest.mark.parametrize("change, field", [
    (lambda s: s["layers"][0].update(kind="lstm"), "stages.layers.0.kind"),
    (lambda s: s["layers"][1].update(stride=[0, 1]), "stages.layers.1.stride"),
    (lambda s: s["layers"][2].update(scale=-1), "stages.layers.2"),
    (lambda s: s.update(verified_images=0), "stages.verified_images"),
])
def test_bad_stage_metadata_is_a_one_line_error_naming_the_field(change, field):
    meta = json.loads(json.dumps(md.load_metadata(SHIPPED_MODEL)))
    change(meta["stages"])
    with pytest.raises(UserError, match=field.replace(".", r"\.")):
        md.validate_metadata(meta)
