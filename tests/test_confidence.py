"""The "no digit" rule (edge/confidence.py): fitted at export, carried in the metadata, and applied alike by
the runner, `predict --json`, the camera, `evaluate`, the server and taught models; `--threshold` overrides
it, and a model exported without it answers as before. The page's half is in tests/test_web.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import UNSURE, run_cli, with_rule
from digitcnn.data import load_mnist, run_split
from edge import metadata as md
from edge.adapt import Adapter
from edge.confidence import THRESHOLD, WITHHELD, Confidence, calibrate, fit_temperature, fit_threshold
from edge.errors import UserError
from edge.runner import DigitModel


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_calibration_keeps_the_best_guess_and_temperature_1_changes_nothing():
    rng = np.random.default_rng(0)
    p = _softmax(rng.normal(0, 2, (200, 10))).astype(np.float32)
    assert calibrate(p, 1.0) is p
    for temperature in (0.3, 0.5, 2.0):
        q = calibrate(p, temperature)
        assert q.dtype == np.float32 and np.allclose(q.sum(axis=1), 1, atol=1e-5)
        assert np.array_equal(q.argmax(axis=1), p.argmax(axis=1))
        assert np.all((q.max(axis=1) > p.max(axis=1)) == (temperature < 1))  # T < 1 sharpens, T > 1 softens


@pytest.mark.parametrize("truth", [0.5, 1.0, 2.0])
def test_fit_temperature_finds_the_temperature_the_labels_were_drawn_at(truth):
    """Labels drawn from softmax(z / truth), the model saying softmax(z): the fit recovers `truth`."""
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 1.5, (20_000, 10))
    chosen = _softmax(logits / truth)
    labels = (chosen.cumsum(axis=1) < rng.random((len(logits), 1))).sum(axis=1)
    assert fit_temperature(_softmax(logits).astype(np.float32), labels) == pytest.approx(truth, rel=0.05)


def test_export_writes_the_rule_fitted_on_the_runs_validation_images(int8_model, small_run, mnist_npz):
    rule = md.load_metadata(int8_model)["confidence"]
    config = json.loads((small_run / "config.json").read_text())
    mnist = load_mnist(mnist_npz)
    *_, x_val, y_val = run_split(mnist.x_train, mnist.y_train, val_size=config["val_size"], seed=config["seed"],
                                 subset=config["subset"])
    assert rule["images"] == len(y_val) == 600  # a tenth of the 6,000
    raw = DigitModel(int8_model).outputs(x_val)[md.PROBABILITIES]
    assert rule["threshold"] == fit_threshold(calibrate(raw, rule["temperature"])) >= THRESHOLD

    def nll(temperature: float) -> float:
        return float(-np.log(calibrate(raw, temperature)[np.arange(len(y_val)), y_val]).mean())

    assert nll(rule["temperature"]) < min(nll(rule["temperature"] * 1.2), nll(rule["temperature"] / 1.2), nll(1.0))


def test_fit_threshold_withholds_at_most_its_share_and_never_goes_under_one_half():
    rng = np.random.default_rng(2)
    bump = rng.uniform(5, 12, (5000, 1)) * np.eye(10)[rng.integers(0, 10, 5000)]
    p = _softmax(rng.normal(0, 1, (5000, 10)) + bump)
    top = p.max(axis=1)
    assert np.mean(top < THRESHOLD) < WITHHELD  # at 0.5 this model would withhold under 0.25%
    for share in (WITHHELD, 0.05):
        threshold = fit_threshold(p, share)
        assert threshold == round(threshold, 4) and np.mean(top < threshold) <= share
        assert np.mean(top < threshold + 2e-4) > share  # none larger would do
    assert fit_threshold(np.full((100, 10), 0.1), WITHHELD) == THRESHOLD  # an unsure model keeps 0.5


@pytest.mark.parametrize("rule", [UNSURE, {"temperature": 1.0, "threshold": 0.9}, {"temperature": 0.5, "threshold": 0.99}])
def test_runner_reads_by_the_rule_in_the_metadata(int8_model, tmp_path, rule, mnist_npz):
    with np.load(mnist_npz) as d:
        x = d["x_test"][:200]
    model = DigitModel(with_rule(int8_model, tmp_path / "ruled.tflite", rule))
    raw = model.outputs(x)[md.PROBABILITIES]
    expected = calibrate(raw, rule["temperature"])
    assert np.array_equal(model.probabilities(x), expected)
    readings = model.read(x)
    assert [r.top[0][0] for r in readings] == raw.argmax(axis=1).tolist()  # the best guess never changes
    assert [r.confidence for r in readings] == pytest.approx(expected.max(axis=1).tolist())
    assert [r.digit for r in readings] == [r.top[0][0] if r.confidence >= rule["threshold"] else None for r in readings]
    assert [r.digit for r in model.read(x, threshold=0)] == [r.top[0][0] for r in readings]  # an explicit threshold wins


def test_a_model_without_the_rule_answers_as_before(int8_model, tmp_path, mnist_npz):
    """Exported before the rule: raw probabilities, and "no digit" under 0.5 of them."""
    with np.load(mnist_npz) as d:
        x = d["x_test"][:200]
    model = DigitModel(with_rule(int8_model, tmp_path / "old.tflite", None))
    assert model.confidence == Confidence(1.0, 0.5)
    raw = model.outputs(x)[md.PROBABILITIES]
    assert np.array_equal(model.probabilities(x), raw)
    assert [r.digit for r in model.read(x)] == [int(p.argmax()) if p.max() >= 0.5 else None for p in raw]


def _answers(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.fixture(scope="module")
def digit_pngs(tmp_path_factory, mnist_npz):
    folder = tmp_path_factory.mktemp("digits")
    with np.load(mnist_npz) as d:
        for i, (image, label) in enumerate(zip(d["x_test"][:12], d["y_test"][:12])):
            Image.fromarray(image).save(folder / f"{label}_{i:02d}.png")
    return folder


def test_predict_json_and_camera_take_the_rule_and_threshold_overrides_it(int8_model, unsure_model, digit_pngs):
    usual = _answers(run_cli("predict", str(int8_model), str(digit_pngs), "--json").stdout)
    unsure = _answers(run_cli("predict", str(unsure_model), str(digit_pngs), "--json").stdout)
    assert any(a["digit"] is not None for a in usual)
    assert all(a["digit"] is None for a in unsure)
    assert [a["top"][0][0] for a in unsure] == [a["top"][0][0] for a in usual]
    overridden = _answers(run_cli("predict", str(unsure_model), str(digit_pngs), "--json", "--threshold", "0").stdout)
    assert [a["digit"] for a in overridden] == [a["top"][0][0] for a in unsure]
    assert "no digit (best guess" in run_cli("predict", str(unsure_model), str(next(digit_pngs.iterdir()))).stdout
    camera = _answers(run_cli("camera", str(unsure_model), "--source", str(digit_pngs), "--headless", "--roi", "1").stdout)
    assert [a["digit"] for a in camera] == [None] * len(unsure)


def test_evaluate_counts_what_the_rule_withholds_and_scores_the_best_guess(int8_model, unsure_model, digit_pngs,
                                                                           tmp_path):
    results = {m.stem: json.loads(run_cli("evaluate", str(m), "--data", str(digit_pngs), "--json", "--report",
                                          str(tmp_path / m.stem)).stdout) for m in (int8_model, unsure_model)}
    usual, unsure = results["model_int8"], results["unsure"]
    assert unsure["accuracy"] == usual["accuracy"]
    assert unsure["withheld"]["right"] + unsure["withheld"]["wrong"] == unsure["n"] - unsure["no_digit"]
    assert unsure["withheld"]["right"] == unsure["correct"]
    assert {k: unsure["withheld"][k] for k in ("temperature", "threshold")} == UNSURE


def test_the_server_answers_by_the_rule(unsure_model, digit_pngs, tmp_path):
    from starlette.testclient import TestClient

    from edge.page import RUNTIME
    from edge.serve import create_app

    runtime = tmp_path / "node_modules"  # stand-ins: this needs no `npm ci`
    for name in RUNTIME:
        (runtime / name).parent.mkdir(parents=True, exist_ok=True)
        (runtime / name).write_bytes(b"stand-in")
    client = TestClient(create_app(unsure_model, node_modules=runtime))
    assert client.get("/model.json").json()["confidence"]["threshold"] == UNSURE["threshold"]
    png = sorted(digit_pngs.iterdir())[0]
    answer = client.post("/api/predict", files={"file": (png.name, png.read_bytes())}).json()
    expected = _answers(run_cli("predict", str(unsure_model), str(png), "--json").stdout)[0]
    assert answer == {**expected, "file": png.name} and answer["digit"] is None


def test_a_taught_model_applies_the_rule_to_its_adapted_probabilities(int8_model, tmp_path, mnist_npz):
    from test_teach import write_hand
    from strokes import CONTINENTAL

    folder = write_hand(tmp_path / "hand", CONTINENTAL, per_digit=3)
    base = with_rule(int8_model, tmp_path / "base.tflite", {"temperature": 0.5, "threshold": 0.9})
    run_cli("teach", str(folder), "--model", str(base), "--out", str(tmp_path / "taught.tflite"))
    taught = DigitModel(tmp_path / "taught.tflite")
    assert taught.confidence == Confidence(0.5, 0.9)
    with np.load(mnist_npz) as d:
        x = d["x_test"][:100]
    outputs = taught.outputs(x)
    adapted = Adapter(taught.meta["adaptation"])(outputs[md.PROBABILITIES], outputs[md.FEATURES])
    expected = calibrate(adapted, 0.5)
    assert np.array_equal(taught.probabilities(x), expected)
    assert [r.digit for r in taught.read(x)] == [int(p.argmax()) if p.max() >= 0.9 else None for p in expected]


@pytest.mark.parametrize("change, field", [
    ({"temperature": 0, "threshold": 0.5, "images": 1}, "confidence.temperature"),
    ({"temperature": 0.5, "threshold": 1.5, "images": 1}, "confidence.threshold"),
    ({"temperature": 0.5, "images": 1}, "confidence.threshold"),
])
def test_a_bad_rule_is_a_one_line_error_naming_the_field(int8_model, change, field):
    meta = {**md.load_metadata(int8_model), "confidence": change}
    with pytest.raises(UserError) as error:
        md.validate_metadata(meta)
    assert field in str(error.value) and "\n" not in str(error.value)
