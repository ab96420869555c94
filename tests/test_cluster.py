"""Training on the engines people run: Slurm job steps (simulated by their environment variables)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli

SLURM_TWO_NODES = {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "node[07-08]",
                   "SLURM_STEP_TASKS_PER_NODE": "1(x2)"}


def _python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env}, timeout=300)


def test_a_slurm_step_of_two_tasks_resolves_to_two_workers():
    code = ("from digitcnn.distribute import slurm_resolver; r = slurm_resolver(); "
            "print(r.cluster_spec().as_dict(), r.task_type, r.task_id)")
    out = _python(code, {**SLURM_TWO_NODES, "DIGITCNN_PORT_BASE": "9100"})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[0] == "{'worker': ['node07:9100', 'node08:9100']} worker 1"


def test_one_slurm_task_or_a_tf_config_means_no_slurm_cluster():
    code = "from digitcnn.distribute import slurm_resolver; print(slurm_resolver())"
    one = _python(code, {**SLURM_TWO_NODES, "SLURM_STEP_NUM_TASKS": "1", "SLURM_STEP_TASKS_PER_NODE": "1"})
    tf_config = json.dumps({"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 0}})
    named = _python(code, {**SLURM_TWO_NODES, "TF_CONFIG": tf_config})
    assert one.stdout.strip() == named.stdout.strip() == "None"


@pytest.mark.slow
def test_two_slurm_tasks_on_one_node_train_together(tmp_path, mnist_npz):
    """srun -n 2 on one node, as its variables say: both tasks train as one job, the chief writes the run."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    out = tmp_path / "slurm"
    procs = [subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "train", "--model", "lenet5", "--subset", "1000",
                               "--epochs", "1", "--data", str(mnist_npz), "--out", str(out)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "SLURM_PROCID": str(rank),
                                   "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "localhost",
                                   "SLURM_STEP_TASKS_PER_NODE": "2", "DIGITCNN_PORT_BASE": str(port)})
             for rank in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["replicas"] == 2 and metrics["global_batch"] == 256  # MultiWorkerMirroredStrategy's two workers


def test_tfjob_manifest_runs_the_training_image_as_chief_and_workers_on_shared_storage():
    import yaml  # PyYAML, in the dev extra: a missing one fails the test, never skips it
    job = yaml.safe_load((ROOT / "deploy" / "tfjob.yaml").read_text())
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "TFJob"
    specs = job["spec"]["tfReplicaSpecs"]
    assert set(specs) == {"Chief", "Worker"} and specs["Chief"]["replicas"] == 1 and specs["Worker"]["replicas"] >= 1
    for spec in specs.values():
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        assert container["name"] == "tensorflow"  # the operator injects TF_CONFIG into this container
        args = container["args"]
        assert args[:3] == ["train", "--strategy", "multiworker"]
        out = args[args.index("--out") + 1]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        claims = {v["name"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
        assert any(out.startswith(path) and name in claims for name, path in mounts.items())
    assert len({tuple(s["template"]["spec"]["containers"][0]["args"]) for s in specs.values()}) == 1


def test_slurm_script_starts_one_train_per_task_on_shared_storage():
    script = (ROOT / "deploy" / "slurm.sbatch").read_text()
    assert subprocess.run(["bash", "-n", str(ROOT / "deploy" / "slurm.sbatch")]).returncode == 0
    assert "srun python cli.py train --strategy multiworker --out" in script and "TF_CONFIG=" not in script


@pytest.mark.slow
def test_a_tfjob_evaluator_scores_the_chiefs_checkpoints(small_run, mnist_npz):
    """TF_CONFIG's `evaluator` trains nothing: it scores the run's checkpoints, here the last one, with
    the weights the chief scored at that epoch's end, and stops after the run's last epoch."""
    tf_config = json.dumps({"cluster": {"chief": ["localhost:1"]}, "task": {"type": "evaluator", "index": 0}})
    result = run_cli("train", "--model", "lenet5", "--subset", "6000", "--epochs", "2", "--data", str(mnist_npz),
                     "--out", str(small_run), env={"TF_CONFIG": tf_config}, timeout=300)
    val_acc = json.loads((small_run / "metrics.json").read_text())["val_accuracy"]
    assert result.stdout.splitlines()[-1].startswith("evaluated epoch 2/2")
    assert result.stdout.split()[-1] == f"{val_acc:.4f}"
    assert any((small_run / "tensorboard" / "eval").iterdir())
