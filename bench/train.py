"""Benchmark: the default `python cli.py train` on MNIST, plus throughput with 1 and 2 replicas.

Prints one JSON line. Not a test: it takes about 15 minutes per model on a 2-core machine.
    python bench/train.py [--model lenet-plus] [--data PATH]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]


def _train(out: Path, *args: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([sys.executable, str(ROOT / "cli.py"), "train", "--out", str(out), *args], check=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, stdout=subprocess.DEVNULL)
    return json.loads((out / "metrics.json").read_text())


@click.command()
@click.option("--model", default="lenet-plus", show_default=True)
@click.option("--data", type=click.Path(exists=True), help="MNIST npz (default: $DIGITCNN_DATA or download).")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory to keep (default: runs/bench-<model>).")
def main(model: str, data: str | None, out: str | None) -> None:
    data_args = ["--data", data] if data else []
    full = _train(Path(out or ROOT / "runs" / f"bench-{model}"), "--model", model, *data_args)
    result = {
        "bench": "train", "model": model, "test_accuracy": full["test_accuracy"],
        "val_accuracy": full["val_accuracy"], "wall_seconds": round(full["wall_seconds"], 1),
        "epochs": len(full["history"]), "images_per_second": round(full["images_per_second"]),
    }
    # Throughput alone: a short run after the first epoch's tracing, on 1 and on 2 replicas.
    with tempfile.TemporaryDirectory() as tmp:
        for replicas in (1, 2):
            m = _train(Path(tmp) / f"r{replicas}", "--model", model, "--epochs", "3", "--subset", "20000",
                       "--devices", str(replicas), *data_args)
            result[f"images_per_second_{replicas}_replicas"] = round(
                sum(h["images_per_second"] for h in m["history"][1:]) / 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
