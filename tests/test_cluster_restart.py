"""A TFJob-style job on one machine (TF_CONFIG with `chief` and `worker` roles, as Kubeflow's operator
writes it; Slurm's tasks, all workers, are tested in test_cluster.py): a chief and two workers train
one model, and a job whose worker dies mid-run is restarted and ends with the weights of an
uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from test_train import _free_ports

pytestmark = pytest.mark.slow

ROLES = (("chief", 0), ("worker", 0), ("worker", 1))


def _start_job(out: Path, data: Path, cluster: dict) -> list[subprocess.Popen]:
    """Every task of the cluster as its own `train` process, TF_CONFIG as Kubeflow's operator writes it."""
    args = [sys.executable, str(ROOT / "cli.py"), "train", "--subset", "3000", "--epochs", "2",
            "--strategy", "multiworker", "--data", str(data), "--out", str(out)]
    return [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                                  "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": role, "index": i}})})
            for role, i in ROLES]


def _finish(procs: list[subprocess.Popen]) -> list[str]:
    """Each process's stdout, once every one has ended well."""
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), "\n".join(err[-2000:] for _, err in outputs)
    return [stdout for stdout, _ in outputs]


def _cluster() -> dict:
    chief, *workers = (f"localhost:{port}" for port in _free_ports(len(ROLES)))
    return {"chief": [chief], "worker": workers}


def _weights(out: Path) -> str:
    return json.loads((out / "metrics.json").read_text())["weights_sha256"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, mnist_npz) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("tfjob") / "run"
    return out, _finish(_start_job(out, mnist_npz, _cluster()))


def test_a_chief_and_two_workers_train_one_model(uninterrupted):
    out, stdouts = uninterrupted
    m = json.loads((out / "metrics.json").read_text())  # the chief's
    assert m["replicas"] == 3 and m["global_batch"] == 3 * 128
    fingerprints = [line.split()[-1] for stdout in stdouts for line in stdout.splitlines()
                    if line.strip().startswith("weights")]
    assert len(fingerprints) == 3 and all(m["weights_sha256"].startswith(f) for f in fingerprints)
    assert not list(out.glob(".worker-*"))  # the workers' scratch checkpoints are gone


def test_a_job_restarted_after_a_worker_dies_ends_as_an_uninterrupted_one(uninterrupted, tmp_path, mnist_npz):
    """Worker 1 is killed once epoch 1's checkpoint is recorded; its peers cannot go on without it,
    so the job is stopped and started again, as the operator or a resubmitted sbatch would."""
    out, cluster = tmp_path / "run", _cluster()
    procs = _start_job(out, mnist_npz, cluster)
    deadline = time.time() + 300
    # A checkpoint is recorded in this state file only once written by every task (saving is collective).
    while not (out / "checkpoints" / "checkpoint").exists():
        assert all(p.poll() is None for p in procs) and time.time() < deadline, "no checkpoint while all ran"
        time.sleep(0.02)
    procs[2].kill()
    for p in procs:
        p.kill()
        p.communicate()
    assert not (out / "metrics.json").exists()

    chief_stdout = _finish(_start_job(out, mnist_npz, cluster))[0]
    assert f"resuming {out} from epoch 1 of 2" in chief_stdout
    assert _weights(out) == _weights(uninterrupted[0])
