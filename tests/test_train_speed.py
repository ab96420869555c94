"""What keeps training fast on a shared or limited machine: thread pools sized to the usable cores,
the one-device input path, and the profiler trace a GPU user reads."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT, run_cli


def test_thread_pools_follow_the_cores_this_process_may_use():
    """A job pinned to one core (a Slurm or container limit) gets one-thread pools, not the machine's count."""
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "import tensorflow as tf; from digitcnn.distribute import choose_strategy; choose_strategy('one'); "
            "print(tf.config.threading.get_intra_op_parallelism_threads(), "
            "tf.config.threading.get_inter_op_parallelism_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True,
                         env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""}).stdout
    assert out.split() == ["1", "1"]


@pytest.mark.slow
def test_profile_writes_a_tensorboard_trace(tmp_path, mnist_npz):
    out = tmp_path / "profiled"
    run_cli("train", "--model", "lenet5", "--subset", "1200", "--batch-size", "64", "--epochs", "1", "--profile",
            "--data", str(mnist_npz), "--out", str(out))
    traces = list((out / "tensorboard" / "plugins" / "profile").glob("*/*.xplane.pb"))
    assert len(traces) == 1 and traces[0].stat().st_size > 1000
