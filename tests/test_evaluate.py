"""Evaluation as a user meets it: the report of both formats, comparisons, labelled folders with bad
files, robustness, the layer-by-layer explanation, bad input, and TFLite without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import BLOCK_TENSORFLOW, ROOT, messages, run_cli
from edge.predict import predict_files
from edge.runner import DigitModel

N = 300  # MNIST test images per report: enough for stable counts, fast on two busy cores
REPORT_FILES = {"confusion.json", "confusion.png", "mistakes.png", "reliability.png", "rejection.png",
                "explain-1.png", "explain-2.png", "explain-3.png", "robustness.json", "summary.json", "report.html"}


@pytest.fixture(scope="module")
def mnist_head(mnist_npz):
    with np.load(mnist_npz) as d:
        return d["x_test"][:N], d["y_test"][:N].astype(int)


@pytest.fixture(scope="module")
def tflite_report(int8_model, mnist_npz, tmp_path_factory):
    """`evaluate --robustness --json` of the int8 model on N images, with TensorFlow imports refused."""
    out = tmp_path_factory.mktemp("report")
    result = subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW, str(ROOT / "cli.py"), "evaluate",
                             str(int8_model), "--data", str(mnist_npz), "--limit", str(N), "--robustness", "--json",
                             "--report", str(out)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, json.loads(result.stdout)


def test_confusion_counts_match_an_independent_count(tflite_report, int8_model, mnist_head):
    out, report = tflite_report
    x, y = mnist_head
    expected = np.zeros((10, 10), int)
    np.add.at(expected, (y, DigitModel(int8_model).probabilities(x).argmax(axis=1)), 1)
    assert report["confusion"] == expected.tolist()
    assert json.loads((out / "confusion.json").read_text())["counts"] == expected.tolist()
    assert report["n"] == N and report["accuracy"] == np.trace(expected) / N >= 0.85
    low, high = report["accuracy_ci95"]
    assert low < report["accuracy"] < high and high - low < 0.1
    assert [c["support"] for c in report["per_class"]] == np.bincount(y, minlength=10).tolist()
    assert [c["recall"] for c in report["per_class"]] == pytest.approx(np.diag(expected) / expected.sum(axis=1))
    assert 0 <= report["ece"] < 0.5 and report["latency_ms"]["p50"] > 0


def test_every_report_file_is_written_and_opens(tflite_report):
    out, report = tflite_report
    assert {p.name for p in out.iterdir()} == REPORT_FILES  # and no temporary files left behind
    for png in out.glob("*.png"):
        with Image.open(png) as image:
            image.load()
            assert image.format == "PNG" and min(image.size) > 100
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 7 and "src=\"http" not in page and "rotate +30 deg" in page
    assert report["report"] == str(out / "report.html")
    assert json.loads((out / "summary.json").read_text())["models"][0]["confusion"] == report["confusion"]


def test_robustness_identity_equals_accuracy_and_rotation_hurts(tflite_report):
    _, report = tflite_report
    rows = {r["corruption"]: r["accuracy"] for r in report["robustness"]["rows"]}
    assert all(len(a) == 1 for a in rows.values()) and report["robustness"]["n"] == N
    accuracy = {name: a[0] for name, a in rows.items()}
    assert accuracy["none"] == report["accuracy"]
    by_angle = [(accuracy[f"rotate -{d} deg"] + accuracy[f"rotate +{d} deg"]) / 2 for d in (10, 20, 30)]
    assert accuracy["none"] >= by_angle[0] >= by_angle[1] >= by_angle[2]
    assert accuracy["rotate -30 deg"] < accuracy["none"] - 0.05 and accuracy["rotate +30 deg"] < accuracy["none"] - 0.05
    # Framing thresholds the speckle away: what a user's noisy image meets is close to clean accuracy.
    assert accuracy["noise (sigma 40), preprocessed"] >= accuracy["none"] - 0.03
    for kind in ("shift", "scale", "blur", "noise", "inverted", "thinner", "thicker", "small on a canvas",
                 "off-centre on a canvas"):
        assert any(name.startswith(kind) for name in rows), kind


def test_keras_and_tflite_side_by_side(small_run, int8_model, mnist_npz, tmp_path):
    out = tmp_path / "compare"
    result = run_cli("evaluate", str(small_run / "model.keras"), str(int8_model), "--data", str(mnist_npz),
                     "--limit", "200", "--report", str(out))
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["model", "model_int8"]
    assert len(next(line for line in lines if line.startswith("accuracy")).split()) == 3
    assert lines[-1] == f"report: {out / 'report.html'}"
    summary = json.loads((out / "summary.json").read_text())
    keras, tflite = summary["models"]
    assert (keras["format"], tflite["format"]) == ("keras", "tflite")
    assert abs(keras["accuracy"] - tflite["accuracy"]) <= 0.02
    for name in ("model", "model_int8"):
        assert (out / f"{name}-confusion.png").is_file() and (out / f"{name}-explain-1.png").is_file()
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 14


def test_explain_draws_every_layer_of_both_formats(small_run, int8_model, mnist_head, tmp_path):
    import keras

    from digitcnn.explain import draw, explainer
    from digitcnn.figures import png

    layers = keras.saving.load_model(small_run / "model.keras", compile=False).layers
    stage_of = {"Conv2D": "conv", "MaxPooling2D": "pool", "Flatten": "flatten", "Dense": "dense"}
    expected = ["input", "filters", *(stage_of[type(layer).__name__] for layer in layers), "output"]
    shapes = [tuple(layer.output.shape[1:]) for layer in layers]
    digit = mnist_head[0][0]
    answers = []
    for model in (small_run / "model.keras", int8_model):
        stages = explainer(model)(digit)
        assert [s.kind for s in stages] == expected, model
        assert [s.values.shape for s in stages[2:-1]] == shapes
        assert stages[-1].values.sum() == pytest.approx(1, abs=0.02)
        answers.append(int(stages[-1].values.argmax()))
        fig = draw(stages, str(model))
        titles = {ax.get_title(loc="left") for ax in fig.axes}
        assert all(s.title in titles for s in stages)
        with Image.open(__import__("io").BytesIO(png(fig))) as image:
            assert image.size[1] > image.size[0]
    assert answers[0] == answers[1] == mnist_head[1][0]
    Image.fromarray(255 - digit).resize((120, 120)).save(tmp_path / "seven.png")
    result = run_cli("explain", str(int8_model), str(tmp_path / "seven.png"), "--out", str(tmp_path / "why.png"))
    assert result.stdout.split()[0] == str(mnist_head[1][0]) and result.stdout.split()[-1] == str(tmp_path / "why.png")
    with Image.open(tmp_path / "why.png") as image:
        image.load()


def test_labelled_folder_lists_bad_files_and_scores_the_rest(int8_model, mnist_head, tmp_path):
    x, y = mnist_head
    folder = tmp_path / "digits"
    good = []
    for i in range(16):  # half named <digit>_*.png, half in <digit>/ folders; dark ink on light paper
        path = folder / f"{y[i]}_{i}.png" if i % 2 else folder / str(y[i]) / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(255 - x[i]).resize((84, 84), Image.BICUBIC).save(path)
        good.append((path, y[i]))
    Image.new("L", (60, 60), 220).save(folder / "3_blank.png")  # readable, but no digit: a wrong answer
    good.append((folder / "3_blank.png", 3))
    Image.fromarray(x[0]).save(folder / "seven.png")
    (folder / "4_cut.png").write_bytes((folder / "3_blank.png").read_bytes()[:40])
    (folder / "5_empty.jpg").write_bytes(b"")
    (folder / "misc").mkdir()
    result = run_cli("evaluate", str(int8_model), "--data", str(folder), "--json", "--report", str(tmp_path / "r"))
    for name in ("seven.png", "4_cut.png", "5_empty.jpg", "misc"):
        assert str(folder / name) in result.stderr, name
    report = json.loads(result.stdout)
    assert len(report["skipped"]) == 4 and report["n"] == len(good) and report["no_digit"] == 1
    assert report["confusion_labels"][-1] == "no digit" and report["confusion"][3][-1] == 1
    answers = predict_files(DigitModel(int8_model), [p for p, _ in good], threshold=0)
    assert report["correct"] == sum(a["digit"] == label for a, (_, label) in zip(answers, good))


@pytest.mark.parametrize("args, message", [
    (["evaluate", "missing.tflite"], "no such model file"),
    (["evaluate", "README.md"], "not a model file"),
    (["evaluate", "{junk}.keras"], "not a Keras model"),
    (["evaluate", "{junk}.tflite"], "not a TFLite model"),
    (["evaluate", "{model}", "--data", "missing.npz"], "no such file"),
    (["evaluate", "{model}", "--data", "{empty}"], "no labelled images"),
    (["explain", "missing.keras", "x.png"], "no such model file"),
    (["explain", "{model}", "missing.png"], "no such file"),
], ids=["missing-model", "wrong-type", "junk-keras", "junk-tflite", "missing-data", "empty-folder",
        "explain-missing-model", "explain-missing-image"])
def test_bad_input_is_one_line_and_exit_1(args, message, int8_model, tmp_path):
    for suffix in (".keras", ".tflite"):
        (tmp_path / f"junk{suffix}").write_bytes(b"\0" * 100)
    (tmp_path / "empty").mkdir()
    values = {"junk": str(tmp_path / "junk"), "model": str(int8_model), "empty": str(tmp_path / "empty")}
    result = run_cli(*(a.format(**values) for a in args), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_explain_never_writes_over_what_it_reads(int8_model, tmp_path):
    """`--out` given by mistake as the image or the model (or not a .png) is refused before any work."""
    image = tmp_path / "seven.png"
    Image.new("L", (60, 60), 0).save(image)
    model = tmp_path / "model.tflite"
    model.write_bytes(int8_model.read_bytes())
    for out, message in ((image, "is the image being explained"), (model, "give a name ending in .png"),
                         (tmp_path / "why.jpg", "give a name ending in .png")):
        before = out.read_bytes() if out.exists() else None
        result = run_cli("explain", str(model), str(image), "--out", str(out), check=False)
        assert result.returncode == 1 and messages(result.stderr)[-1].startswith(f"Error: {out}: "), result.stderr
        assert message in result.stderr and (out.read_bytes() if out.exists() else None) == before
