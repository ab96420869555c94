"""The training command end to end: outputs, strategies, workers, resume and determinism."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_cli
from digitcnn.data import USPS_SHA256
from digitcnn import negatives
from digitcnn.styles import DEFAULT_STYLES

pytestmark = pytest.mark.slow


def _metrics(run) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_short_run_lowers_the_loss_and_writes_every_output(small_run):
    m = _metrics(small_run)
    assert m["history"][-1]["loss"] < m["history"][0]["loss"]
    assert 0.5 < m["test_accuracy"] <= 1 and 0.5 < m["val_accuracy"] <= 1
    for key in ("wall_seconds", "images_per_second", "strategy", "replicas", "seed", "model", "params",
                "versions", "data", "pixel_scaling"):
        assert key in m
    assert m["model"] == "lenet5" and m["params"] == 61_706 and m["data"]["train"] == 5400
    assert len(m["data"]["sha256"]) == 64
    # What it trained on: MNIST's share of the subset alone, as the fixture asks.
    assert m["training"]["data"] == [{"name": "mnist", "sha256": m["data"]["sha256"], "images": 5400}]
    assert m["training"]["styles"] == {"share": 0.0, "names": []} and not m["config"]["usps"]
    assert m["training"]["negatives"]["images"] == 0
    assert m["config"]["augment_on"] == "host"  # where `auto` warps on a CPU
    for name in ("model.keras", "metrics.json", "curves.png", "config.json"):
        assert (small_run / name).stat().st_size > 0
    assert (small_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((small_run / "checkpoints").glob("ckpt-2.index"))
    assert any((small_run / "tensorboard").iterdir())
    assert not list(small_run.rglob("*.tmp*"))  # no temporary file left behind


def test_mirrored_on_two_logical_cpus(tmp_path, mnist_npz):
    out = tmp_path / "mirrored"
    run_cli("train", "--subset", "600", "--epochs", "1", "--strategy", "mirrored", "--devices", "2",
            "--data", str(mnist_npz), "--out", str(out))
    m = _metrics(out)
    assert m["strategy"] == "MirroredStrategy" and m["replicas"] == 2 and m["global_batch"] == 256


def test_styles_flags_are_part_of_the_run(tmp_path, mnist_npz):
    """`--styles` redraws some 1s, 4s, 7s and 9s (digitcnn/styles.py), `--style` picks which; both are part
    of the run's identity, so resuming with another share or other styles is refused, and the same
    command resumes."""
    out = tmp_path / "styled"
    args = ("train", "--model", "lenet5", "--subset", "500", "--epochs", "1", "--no-usps", "--data", str(mnist_npz),
            "--out", str(out))
    run_cli(*args, "--styles", "0.2", "--style", "straight_nine", "--style", "crossed_seven")
    augmentation = json.loads((out / "config.json").read_text())["augmentation"]
    assert augmentation["styles"] == 0.2 and augmentation["style_names"] == ["crossed_seven", "straight_nine"]
    assert _metrics(out)["training"]["styles"] == {"share": 0.2, "names": ["crossed_seven", "straight_nine"]}
    for other in (("--styles", "0.2"), ("--styles", "0.3", "--style", "straight_nine", "--style", "crossed_seven")):
        refused = run_cli(*args, *other, check=False)
        assert refused.returncode == 1 and "styles" in refused.stderr and "Traceback" not in refused.stderr
    again = run_cli(*args, "--styles", "0.2", "--style", "crossed_seven", "--style", "straight_nine")
    assert "resuming" in again.stdout


def test_usps_is_used_when_found_and_the_run_says_so_when_not(tmp_path, mnist_npz, datasets_dir):
    """Without the shared datasets (a fresh machine) training goes on with MNIST alone and says so in one
    line; `--no-usps` leaves it out; `--usps PATH` names it. Which it was is part of the run: resuming
    with the other is refused."""
    args = ("train", "--model", "lenet5", "--subset", "500", "--epochs", "1", "--data", str(mnist_npz))
    fresh = run_cli(*args, "--out", str(tmp_path / "fresh"), env={"DIGITCNN_DATASETS": str(tmp_path / "none")})
    assert [line for line in fresh.stdout.splitlines() if "USPS" in line] == [
        "USPS not found (no $DIGITCNN_DATASETS/usps/usps.npz): training on MNIST alone, without shapes taught "
        "as unsure; add USPS's training split with --usps PATH"]
    assert [d["name"] for d in _metrics(tmp_path / "fresh")["training"]["data"]] == ["mnist"]
    # Unless told, a run draws the default styles, and the shapes that are not digits only beside USPS.
    assert _metrics(tmp_path / "fresh")["training"]["styles"] == {"share": 0.3, "names": list(DEFAULT_STYLES)}
    assert _metrics(tmp_path / "fresh")["training"]["negatives"]["share"] == 0
    assert not _metrics(tmp_path / "fresh")["config"]["usps"]
    asked = run_cli(*args, "--negatives", "0.2", "--out", str(tmp_path / "fresh"), check=False,
                    env={"DIGITCNN_DATASETS": str(tmp_path / "none")})
    assert asked.returncode == 1 and "negatives: 0.0 -> 0.2" in asked.stderr and "Traceback" not in asked.stderr
    off = run_cli(*args, "--no-usps", "--styles", "0", "--negatives", "0", "--out", str(tmp_path / "off"))
    assert "USPS" not in off.stdout
    assert _metrics(tmp_path / "off")["training"] == {
        "data": [{"name": "mnist", "sha256": _metrics(tmp_path / "off")["data"]["sha256"], "images": 450}],
        "styles": {"share": 0.0, "names": []},
        "negatives": {"share": 0.0, "images": 0, "sha256": hashlib.sha256(b"").hexdigest(), "families": [],
                      "held_out": list(negatives.DEV_HELD_OUT)}}
    run_cli(*args, "--usps", str(datasets_dir / "usps" / "usps.npz"), "--out", str(tmp_path / "named"),
            env={"DIGITCNN_DATASETS": str(tmp_path / "none")})
    # USPS's training split, cut to the subset's share of MNIST's training set (500 of 60,000).
    assert _metrics(tmp_path / "named")["training"]["data"][1] == {
        "name": "usps-train", "sha256": USPS_SHA256, "images": round(500 / 60000 * 7291)}
    refused = run_cli(*args, "--no-usps", "--out", str(tmp_path / "named"), check=False)
    assert refused.returncode == 1 and "usps: True -> False" in refused.stderr and "Traceback" not in refused.stderr
    both = run_cli(*args, "--no-usps", "--usps", "x.npz", "--out", str(tmp_path / "both"), check=False)
    assert both.returncode == 1 and "contradict" in both.stderr and "Traceback" not in both.stderr


@pytest.mark.parametrize("devices", [1, 2])
def test_many_epoch_transitions_never_hang(tmp_path, mnist_npz, devices):
    """120 epochs of a few steps each: a fresh data iterator per epoch hung now and then at the
    epoch's end (issue 11). The timeout fails the test, as a user would, instead of hanging CI."""
    out = tmp_path / "epochs"
    result = run_cli("train", "--model", "lenet5", "--subset", "300", "--batch-size", "64", "--epochs", "120",
                     "--devices", str(devices), "--data", str(mnist_npz), "--out", str(out), timeout=400)
    m = _metrics(out)
    assert [h["epoch"] for h in m["history"]] == list(range(1, 121)) and m["replicas"] == devices
    # Not a terminal: one line per epoch, no progress bar's carriage returns.
    assert "\r" not in result.stdout
    assert sum(line.startswith("epoch ") for line in result.stdout.splitlines()) == 120


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _train_args(out, data, seed="1") -> list[str]:
    return ["train", "--model", "lenet-plus", "--subset", "3000", "--epochs", "3", "--seed", seed,
            "--data", str(data), "--out", str(out)]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, mnist_npz) -> dict[str, dict]:
    """The metrics of uninterrupted runs of `_train_args` by seed, 1 and 2 (the warp on the host, where
    `auto` puts it on a CPU)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    for seed in ("1", "2"):
        run_cli(*_train_args(out / seed, mnist_npz, seed=seed))
    return {seed: _metrics(out / seed) for seed in ("1", "2")}


@pytest.mark.parametrize("augment_on", ["host", "device"])
def test_killed_run_resumes_and_ends_where_an_uninterrupted_run_would(tmp_path, mnist_npz, uninterrupted, augment_on):
    """With the warp on the device, the killed and the resumed process both resample in the train step
    and still end with the weights of the uninterrupted run, which warped on the host."""
    # The resumed run's first epoch ran in the killed process: ending with the uninterrupted run's weights,
    # it also shows that another process with the same seed gives the same result (no second uninterrupted run).
    resumed = tmp_path / "resumed"
    args = [*_train_args(resumed, mnist_npz), "--augment-on", augment_on]
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    deadline = time.time() + 300
    # The manager names a checkpoint in its state file only after writing it; resume reads that file,
    # so a kill between the two (ckpt-1.index present, unrecorded) rightly restarts from scratch.
    while not (resumed / "checkpoints" / "checkpoint").exists():
        assert proc.poll() is None and time.time() < deadline, "run ended before its first checkpoint"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (resumed / "metrics.json").exists()

    result = run_cli(*args)
    assert "resuming" in result.stdout and "from epoch 3 of 3" not in result.stdout
    m, straight = _metrics(resumed), uninterrupted["1"]
    assert [h["epoch"] for h in m["history"]] == [1, 2, 3] and m["config"]["augment_on"] == augment_on
    assert m["weights_sha256"] == straight["weights_sha256"]  # same seed, same result
    assert m["test_accuracy"] == straight["test_accuracy"]
    assert uninterrupted["2"]["weights_sha256"] != straight["weights_sha256"]


@pytest.mark.parametrize("devices", ["1", "2"])
def test_the_warp_on_the_device_trains_the_weights_of_the_warp_on_the_host(tmp_path, mnist_npz, devices):
    """Where the warp resamples (`--augment-on`) is not part of the run: on one CPU, and mirrored over two
    logical CPUs, each replica resampling its share of every batch, the weights are bit-identical to the
    host's. So each replica warped its own images by their own random numbers, as the host did."""
    args = ("train", "--model", "lenet5", "--subset", "1000", "--epochs", "2", "--devices", devices,
            "--data", str(mnist_npz))
    for where in ("host", "device"):
        run_cli(*args, "--augment-on", where, "--out", str(tmp_path / where))
    host, device = _metrics(tmp_path / "host"), _metrics(tmp_path / "device")
    assert (host["config"]["augment_on"], device["config"]["augment_on"]) == ("host", "device")
    assert device["replicas"] == int(devices) and device["training"]["negatives"]["images"] > 0
    assert device["weights_sha256"] == host["weights_sha256"]


def test_rerun_with_other_settings_is_refused(small_run, mnist_npz):
    result = run_cli("train", "--model", "lenet5", "--subset", "6000", "--epochs", "3", "--no-usps", "--styles", "0",
                     "--negatives", "0", "--data", str(mnist_npz), "--out", str(small_run), check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "holds a run with other settings (epochs: 2 -> 3)" in result.stderr


def test_a_run_file_that_is_a_pipe_is_refused_not_read_forever(tmp_path, mnist_npz):
    (tmp_path / "run").mkdir()
    os.mkfifo(tmp_path / "run" / "config.json")
    result = run_cli("train", "--subset", "600", "--epochs", "1", "--data", str(mnist_npz), "--out",
                     str(tmp_path / "run"), timeout=120, check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"Error: {tmp_path / 'run' / 'config.json'}: not a regular file; " \
                                                     "remove it or pick another --out"


def test_mixed_precision_trains_with_float32_weights(tmp_path, mnist_npz):
    import keras

    out = tmp_path / "mixed"
    run_cli("train", "--model", "lenet5", "--subset", "600", "--epochs", "1", "--mixed-precision",
            "--data", str(mnist_npz), "--out", str(out))
    m = _metrics(out)
    assert m["config"]["mixed_precision"] and 0 < m["history"][0]["loss"] < 3
    model = keras.saving.load_model(out / "model.keras")
    assert {w.dtype.name for w in model.get_weights()} == {"float32"}  # float16 is for compute only
