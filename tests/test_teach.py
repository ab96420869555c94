"""Teaching on the device: `teach` adapts a model to a folder of someone's digits, and every command
takes the adapted model; odd folders (a missing digit, an unreadable file, one sample) are told, not
fatal; models exported before teaching existed still run, and say they must be re-exported to teach."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from starlette.testclient import TestClient

from conftest import BLOCK_TENSORFLOW, ROOT, run_cli
from edge import metadata as md
from edge.adapt import Adapter, fit, review
from edge.errors import UserError
from edge.preprocess import to_mnist
from edge.runner import DigitModel
from edge.page import RUNTIME
from edge.serve import create_app
from edge.shipped import SHIPPED_MODEL
from edge.teach import check_output
from strokes import CONTINENTAL, ORDINARY, jittered, render


def write_hand(folder, hand: dict, digits=range(10), per_digit: int = 3, seed: int = 0, nested: bool = False):
    """`per_digit` drawings of each digit in `hand`, jittered, as DIR/<digit>_<n>.png (or DIR/<digit>/<n>.png)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for digit in digits:
        for n in range(per_digit):
            path = folder / str(digit) / f"{n}.png" if nested else folder / f"{digit}_{n}.png"
            path.parent.mkdir(exist_ok=True)
            render(jittered(hand[digit], rng)).save(path)
    return folder


def _teach(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_cli("teach", *args, check=check)


def _adaptation(path) -> dict:
    return md.load_metadata(path)["adaptation"]


@pytest.fixture(scope="module")
def continental(tmp_path_factory, int8_model):
    """A folder of a continental hand (5 of each digit), the model taught on it, and the teach output."""
    folder = write_hand(tmp_path_factory.mktemp("hand") / "alice", CONTINENTAL, per_digit=5, nested=True)
    result = _teach(str(folder), "--model", str(int8_model))
    return folder, folder.with_name("alice.tflite"), result


def _digits(model_path, images) -> list:
    base = DigitModel(model_path)
    return [int(d) for d in base.probabilities(np.stack([to_mnist(i) for i in images])).argmax(axis=1)]


def test_taught_model_reads_the_hand_it_was_taught_and_ordinary_digits(continental, int8_model):
    folder, taught, result = continental
    assert result.returncode == 0 and "wrote" in result.stdout and str(taught) in result.stdout
    assert result.stderr.count("warning") == 0, result.stderr
    rng = np.random.default_rng(99)  # new drawings, not the samples
    styled = [render(jittered(CONTINENTAL[d], rng)) for d in (1, 7) for _ in range(4)]
    ordinary = [render(jittered(ORDINARY[d], rng)) for d in range(10)]
    truth = [1] * 4 + [7] * 4
    base_reads = _digits(int8_model, styled)
    assert sum(b != 7 for b in base_reads[4:]) >= 2, base_reads  # the base model misreads this hand's crossed 7s
    assert _digits(taught, styled) == truth
    assert _digits(taught, ordinary) == list(range(10)) == _digits(int8_model, ordinary)
    assert _adaptation(taught)["samples"] == [5] * 10
    # Only the metadata changed: the flatbuffer, and so the base model inside, is the same.
    assert md.bare_flatbuffer(taught.read_bytes()) == md.bare_flatbuffer(int8_model.read_bytes())


def test_every_command_takes_the_taught_model(continental, int8_model, tmp_path):
    _, taught, _ = continental
    new = write_hand(tmp_path / "new", CONTINENTAL, digits=(1, 7), per_digit=4, seed=5)
    # Best guesses (`top[0]`): whether this small test model is sure enough to answer is another matter.
    answers = [json.loads(line) for line in run_cli("predict", str(taught), str(new), "--json").stdout.splitlines()]
    assert [a["top"][0][0] for a in answers] == [1] * 4 + [7] * 4
    scores = {m: json.loads(run_cli("evaluate", str(m), "--data", str(new), "--json", "--report",
                                    str(tmp_path / m.stem)).stdout)["accuracy"] for m in (int8_model, taught)}
    assert scores[taught] == 1.0 > scores[int8_model]
    camera = run_cli("camera", str(taught), "--source", str(new), "--headless", "--roi", "1").stdout.splitlines()
    assert [json.loads(line)["top"][0][0] for line in camera] == [1] * 4 + [7] * 4
    # The page's server hands the adaptation to the page with the metadata, and answers adapted itself.
    runtime = tmp_path / "node_modules"  # stand-ins: this needs no `npm ci`
    for name in RUNTIME:
        (runtime / name).parent.mkdir(parents=True, exist_ok=True)
        (runtime / name).write_bytes(b"stand-in")
    client = TestClient(create_app(taught, node_modules=runtime))
    assert client.get("/model.json").json()["adaptation"] == _adaptation(taught)
    upload = client.post("/api/predict", files={"file": ("1.png", (new / "1_0.png").read_bytes())})
    assert upload.json()["top"][0][0] == 1


def test_teaching_again_replaces_the_adaptation(continental, tmp_path):
    folder, taught, _ = continental
    only_sevens = write_hand(tmp_path / "sevens", CONTINENTAL, digits=(7,), per_digit=3)
    again = tmp_path / "again.tflite"
    _teach(str(only_sevens), "--model", str(taught), "--out", str(again))
    assert _adaptation(again)["samples"] == [0] * 7 + [3] + [0] * 2  # not stacked on the first


def test_a_missing_digit_keeps_the_base_models_scores(int8_model, tmp_path):
    folder = write_hand(tmp_path / "no_threes", CONTINENTAL, digits=[d for d in range(10) if d != 3])
    result = _teach(str(folder), "--model", str(int8_model))
    assert "warning: digit 3: no samples, so the base model reads it as before" in result.stderr
    adaptation = _adaptation(folder.with_name("no_threes.tflite"))
    weights = np.array(adaptation["weights"])
    assert adaptation["samples"][3] == 0 and not weights[3].any() and weights[[1, 7]].any()


def test_an_unreadable_file_is_left_out_with_its_one_line_error(int8_model, tmp_path):
    folder = write_hand(tmp_path / "hand", CONTINENTAL)
    (folder / "4_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.new("L", (60, 60), 0).save(folder / "5_blank.png")
    (folder / "notes.txt").write_text("my digits")
    result = _teach(str(folder), "--model", str(int8_model))
    assert "3 files left out" in result.stderr and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert any(str(folder / "4_broken.png") in line and "read" in line for line in lines), lines
    assert any(str(folder / "5_blank.png") in line and "no digit" in line for line in lines), lines
    assert _adaptation(folder.with_name("hand.tflite"))["samples"] == [3] * 10


def test_a_single_sample_is_taught_and_said_to_be_few(int8_model, tmp_path):
    folder = write_hand(tmp_path / "one", CONTINENTAL, digits=(1,), per_digit=1)
    result = _teach(str(folder), "--model", str(int8_model))
    assert "warning: digit 1: only 1 sample; 3 or more" in result.stderr
    assert result.stderr.count("no samples") == 9
    assert "its only sample, reads as" in result.stderr  # the base model misreads this 1
    assert _adaptation(folder.with_name("one.tflite"))["samples"] == [0, 1] + [0] * 8


def test_a_sample_unlike_its_label_is_named(int8_model, tmp_path):
    folder = write_hand(tmp_path / "hand", ORDINARY)
    render(ORDINARY[0]).save(folder / "6_oops.png")  # a 0 filed as a 6
    result = _teach(str(folder), "--model", str(int8_model))
    assert f"digit 6: {folder / '6_oops.png'} reads as 0 and looks most like one of your 0s" in result.stderr
    assert result.stderr.count("warning") == 1


@pytest.mark.parametrize("case, message", [
    ("no folder", "no such folder"),
    ("empty folder", "no labelled images"),
    ("only blanks", "no digit found in any"),
    ("no model", "no such model file"),
])
def test_bad_input_is_a_one_line_error_and_writes_nothing(int8_model, tmp_path, case, message):
    folder = tmp_path / "samples"
    model = int8_model
    if case != "no folder":
        folder.mkdir()
    if case == "only blanks":
        Image.new("L", (40, 40), 0).save(folder / "2_blank.png")
    if case == "no model":
        write_hand(folder, ORDINARY, digits=(2,))
        model = tmp_path / "nowhere.tflite"
    result = _teach(str(folder), "--model", str(model), check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert not (tmp_path / "samples.tflite").exists()


def test_a_model_exported_before_teaching_runs_and_asks_to_be_re_exported(featureless_model, tmp_path):
    model = DigitModel(featureless_model)
    assert "features" not in model.meta and model.adapter is None
    digit = render(ORDINARY[7])
    assert model.read(to_mnist(digit)[None])[0].digit == 7
    folder = write_hand(tmp_path / "hand", ORDINARY)
    result = _teach(str(folder), "--model", str(featureless_model), check=False)
    assert result.returncode == 1 and "re-export it with `cli.py export`" in result.stderr.splitlines()[-1]
    assert not (tmp_path / "hand.tflite").exists()
    digit.save(tmp_path / "seven.png")
    assert run_cli("predict", str(featureless_model), str(tmp_path / "seven.png")).stdout.startswith("7")


def test_teach_runs_without_tensorflow(int8_model, tmp_path):
    folder = write_hand(tmp_path / "hand", CONTINENTAL, digits=(1, 7))
    result = subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW, "-m", "edge", "teach", str(folder), "--model",
                             str(int8_model)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "hand.tflite").is_file()


def test_untaught_digits_keep_their_scores_and_the_fit_is_deterministic(int8_model):
    meta = md.load_metadata(int8_model)
    rng = np.random.default_rng(3)
    d = meta["features"]["shape"][1]
    features = rng.uniform(0, 3, (6, d)).astype(np.float32)
    probabilities = rng.dirichlet(np.ones(10), 6).astype(np.float32)
    labels = np.array([1, 1, 1, 7, 7, 7])
    adaptation = fit(features, labels, probabilities, meta)
    assert adaptation == fit(features, labels, probabilities, meta)
    adapted = Adapter(adaptation)(probabilities, features)
    untaught = [c for c in range(10) if c not in (1, 7)]
    # Among the digits not taught, the scores keep their ratios: only the taught digits' scores move.
    ratio = adapted[:, untaught] / np.maximum(probabilities[:, untaught], 1 / 512)
    np.testing.assert_allclose(ratio, ratio[:, :1].repeat(len(untaught), axis=1), rtol=1e-5)
    assert [i["kind"] for i in review(features, labels, probabilities, meta)].count("missing") == 8
    with pytest.raises(UserError, match="re-export"):
        fit(features, labels, probabilities, {k: v for k, v in meta.items() if k != "features"})


def test_an_output_that_cannot_be_written_is_a_one_line_error(int8_model, tmp_path):
    folder = write_hand(tmp_path / "hand", CONTINENTAL, digits=(1,))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "hand.tflite"
    result = _teach(str(folder), "--model", str(int8_model), "--out", str(out), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"Error: {out}: cannot write there"), result.stderr



def test_teach_never_writes_over_the_model_a_device_or_a_sample(int8_model, tmp_path):
    """The adapted model goes to a new .tflite file: a device or a pipe, a symlink, a sample, the base
    model and the shipped one are refused before any work, each left as it was (click refuses a folder)."""
    folder = write_hand(tmp_path / "hand", CONTINENTAL, digits=(1,))
    base = tmp_path / "base.tflite"
    base.write_bytes(int8_model.read_bytes())
    pipe, link = tmp_path / "pipe.tflite", tmp_path / "link.tflite"
    os.mkfifo(pipe)
    (tmp_path / "other.tflite").write_bytes(b"someone's file")
    link.symlink_to(tmp_path / "other.tflite")
    sample = next(folder.glob("*.png"))
    for out, message in ((pipe, "not a regular file"), (link, "not a regular file"), (sample, "must end in .tflite"),
                         (base, "is the model being taught")):
        before = out.read_bytes() if out.is_file() and not out.is_symlink() else None
        result = _teach(str(folder), "--model", str(base), "--out", str(out), check=False)
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert result.returncode == 1 and len(errors) == 1 and message in errors[0], result.stderr
        assert out.is_symlink() == (out == link) and (before is None or out.read_bytes() == before)
    assert pipe.is_fifo() and base.read_bytes() == int8_model.read_bytes()
    assert (tmp_path / "other.tflite").read_bytes() == b"someone's file"
    with pytest.raises(UserError, match="is the model shipped with digitcnn"):
        check_output(SHIPPED_MODEL, base)  # checked, not run: a broken check must not overwrite it
