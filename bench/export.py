"""Benchmark: `python cli.py export --quantize all` on a trained run, then ai-edge-litert latency.

Prints one JSON line: per variant the file size, test accuracy, agreement with Keras (from the
export's own verification) and latency per image at batch 1 and 256, with 1 and 2 threads.
Not a test: it needs a fully trained run.
    python bench/export.py [RUN_DIR] [--data PATH]     # RUN_DIR defaults to runs/lenet-plus
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # not bench/: this file's own name would shadow the export package

from digitcnn.data import load_mnist  # noqa: E402
from edge.metadata import VARIANTS, load_metadata, model_input  # noqa: E402
from export.latency import latency_per_image  # noqa: E402


@click.command()
@click.argument("run_dir", type=click.Path(exists=True), default=str(ROOT / "runs" / "lenet-plus"))
@click.option("--data", type=click.Path(exists=True), help="MNIST npz (default: $DIGITCNN_DATA or download).")
def main(run_dir: str, data: str | None) -> None:
    pixels = load_mnist(data, train=False).x_test[:256]
    variants = {}
    with tempfile.TemporaryDirectory() as out:
        # --max-drop 100: keep every variant, however it scores, to report it.
        subprocess.run([sys.executable, str(ROOT / "cli.py"), "export", run_dir, "--quantize", "all", "--out", out,
                        "--max-drop", "100", *(["--data", data] if data else [])],
                       check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, stdout=subprocess.DEVNULL)
        for variant in VARIANTS:
            path = Path(out) / f"model_{variant}.tflite"
            model, meta = path.read_bytes(), load_metadata(path)
            inputs = model_input(pixels, meta)
            variants[variant] = {
                "bytes": len(model),
                **{k: meta["verification"][k] for k in ("test_accuracy", "agreement", "max_abs_diff")},
                "latency_us": {f"batch{batch}_threads{threads}": round(
                    latency_per_image(model, inputs, batch, threads, min_seconds=1.0) * 1e6, 2)
                    for batch in (1, 256) for threads in (1, 2)},
            }
    print(json.dumps({"bench": "export", "run": run_dir, "model": meta["source"]["model"],
                      "keras_test_accuracy": meta["verification"]["keras_test_accuracy"],
                      "cpus": os.cpu_count(), "variants": variants}))


if __name__ == "__main__":
    main()
