"""TensorFlow's start-up noise on a machine without a GPU is dropped; real errors and warnings are not."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT
from digitcnn.quiet import filtered_stderr, noise_dropped

NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1796303856.824149    5071 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.\n",
    "E0000 00:00:1796303863.036736    5071 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed "
    "call to cuInit: UNKNOWN ERROR (303)\n",
    "W0000 00:00:1796303986.549180    6779 dataset.cc:997] Input of GeneratorDatasetOp::Dataset will not be "
    "optimized\n",
]
REAL = "E0000 00:00:1796303863.036736    5071 some_kernel.cc:12] out of memory\n"


def test_only_the_noise_is_dropped_at_the_file_descriptor(capfd):
    with filtered_stderr(noise_dropped):
        for line in (*NOISE, REAL):
            os.write(2, line.encode())  # as TensorFlow's C++ writes, past sys.stderr
        print("train.py:1: UserWarning: a real warning", file=sys.stderr)  # as Python's warnings write
    kept = capfd.readouterr().err.splitlines(keepends=True)  # in any order: capfd replaces sys.stderr
    assert sorted(kept) == sorted([REAL, "train.py:1: UserWarning: a real warning\n"])


def test_cuinit_failing_with_a_driver_present_is_kept():
    assert noise_dropped(NOISE[2:3]) == NOISE[2:3]


def test_a_command_importing_tensorflow_starts_without_cuda_lines(tmp_path):
    """train with data that is missing imports TensorFlow, then stops: one line on stderr, ours."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = "import sys, cli\ntry:\n    cli.main()\nfinally:\n    print('tensorflow' in sys.modules)"
    missing = tmp_path / "missing.npz"
    result = subprocess.run([sys.executable, "-c", code, "train", "--data", str(missing), "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 1 and result.stdout == "True\n"
    assert result.stderr.splitlines() == [f"Error: {missing}: no such file or folder (expected an MNIST .npz or a "
                                          "folder of IDX files)"]


def test_a_level_the_user_set_hides_the_early_lines_too_and_zero_shows_them(tmp_path):
    """TF_CPP_MIN_LOG_LEVEL=3 (as the tests' run_cli sets it) hides the lines logged before absl starts, as it
    hides them after; 0 asks for everything."""
    missing = tmp_path / "missing.keras"
    said = {level: subprocess.run([sys.executable, "cli.py", "explain", str(missing), "x.png"], capture_output=True,
                                  text=True, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": level}, timeout=300)
            for level in ("3", "0")}
    assert said["3"].stderr.splitlines() == [f"Error: {missing}: no such model file"]
    assert len(said["0"].stderr.splitlines()) > 1 and said["0"].stderr.splitlines()[-1] == f"Error: {missing}: no such model file"

