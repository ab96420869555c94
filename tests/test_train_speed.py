"""What keeps training fast on a shared or limited machine: thread pools sized to the usable cores,
the one-device input path, and the profiler trace a GPU user reads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli
from edge.errors import UserError


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


PLACEMENT = """
import collections, json, sys, numpy as np, keras
from digitcnn.augment import Augmentation
from digitcnn.data import training_batches
from digitcnn.distribute import choose_strategy
from digitcnn.model import build_model
from digitcnn.train import input_iterator, make_train_step
strategy = choose_strategy("mirrored", 2)
with strategy.scope():
    model = build_model("lenet5")
    optimizer = keras.optimizers.AdamW(1e-3)
    optimizer.build(model.trainable_variables)
step = make_train_step(strategy, model, optimizer, 0.1, 32)
x, y = np.zeros((64, 28, 28), np.uint8), np.zeros(64, np.int64)
batches = training_batches(x, y, 32, seed=1, epochs=range(1), augmentation=Augmentation(styles=0),
                           warp_on_device=sys.argv[1] == "device")
graph = step.get_concrete_function(next(input_iterator(strategy, batches))).graph
print(json.dumps(collections.Counter(f"{op.type}@{op.device.rsplit('/', 1)[-1]}" for op in graph.get_operations()
                 if op.type in ("Conv2D", "Conv2DBackpropFilter", "ImageProjectiveTransformV3"))))
"""


@pytest.mark.parametrize("augment_on", ["host", "device"])
def test_the_step_runs_each_replicas_work_on_that_replicas_device(augment_on):
    """Mirrored over two logical CPUs as over two GPUs: each replica's convolutions, forward and
    backward, are placed on its own device (lenet5 has two convolutions), none on a device it lacks.
    With the warp on the device, each replica also resamples its own images there; on the host, the
    step resamples nothing."""
    out = subprocess.run([sys.executable, "-c", PLACEMENT, augment_on], capture_output=True, text=True, cwd=ROOT,
                         timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    expected = {f"{op}@device:CPU:{d}": 2 for op in ("Conv2D", "Conv2DBackpropFilter") for d in (0, 1)}
    if augment_on == "device":
        expected |= {f"ImageProjectiveTransformV3@device:CPU:{d}": 1 for d in (0, 1)}
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.parametrize("devices, on_device", [(("CPU:0",), False), (("CPU:0", "CPU:1"), False),
                                                (("GPU:0",), True), (("GPU:0", "GPU:1"), True), (("TPU:0",), True)])
def test_auto_warps_on_the_device_where_the_replicas_are_gpus_or_tpus(devices, on_device):
    """`--augment-on auto` as the strategy's devices say (no GPU here: the strategies are stand-ins);
    `host` and `device` are obeyed whatever the devices."""
    from types import SimpleNamespace

    from digitcnn.distribute import warps_on_device

    strategy = SimpleNamespace(extended=SimpleNamespace(
        worker_devices=tuple(f"/job:worker/replica:0/task:0/device:{d}" for d in devices)))
    assert warps_on_device(strategy) is on_device
    assert warps_on_device(strategy, "host") is False and warps_on_device(strategy, "device") is True
    with pytest.raises(UserError, match="unknown --augment-on 'gpu'"):
        warps_on_device(strategy, "gpu")
