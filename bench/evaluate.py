"""Benchmark `cli.py evaluate` as a user runs it; prints one JSON line.

    python bench/evaluate.py [MODEL.tflite] [--robustness-limit N]    # default runs/lenet-plus/model_int8.tflite

MNIST test accuracy and the wall time of the whole command (target under 10 s); accuracy on USPS
(target >= 98%) and Semeion (target >= 93%), written out as labelled PNG folders and read through
the labelled-folder path, so every digit goes through the edge's preprocessing as a photo would;
and the robustness table. Datasets come from $DIGITCNN_DATASETS (default ../shared/datasets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("DIGITCNN_DATASETS", ROOT.parent / "shared" / "datasets"))
# The 16x16 digits fill their box; scanned at 48 px with an 8 px margin they look like a cropped scan.
SIDE, MARGIN = 48, 8
TARGETS = {"mnist_seconds": 10.0, "usps": 0.98, "semeion": 0.93}


def scan(pixels: np.ndarray) -> Image.Image:
    """A 16x16 USPS or Semeion digit as a cropped scan of it would look, for the edge preprocessing."""
    return ImageOps.expand(Image.fromarray(pixels).resize((SIDE, SIDE), Image.BICUBIC), MARGIN, fill=0)


def write_folder(npz: Path, folder: Path, split: str = "") -> int:
    """The npz's digits (`x`, `y`: the test set; `x_train`, `y_train` with split="_train") as
    `<digit>_<i>.png` files; returns how many."""
    with np.load(npz) as data:
        x, y = data["x" + split], data["y" + split]
    folder.mkdir(parents=True)
    for i, (pixels, label) in enumerate(zip(x, y)):
        scan(pixels).save(folder / f"{label}_{i:05d}.png")
    return len(y)


def evaluate(model: str, *args: str) -> tuple[dict, float]:
    """`cli.py evaluate MODEL ARGS --json`: its JSON and the command's wall time."""
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "evaluate", model, *args, "--json"], check=True,
                            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return json.loads(result.stdout), time.perf_counter() - started


def scores(report: dict, seconds: float) -> dict:
    return {"accuracy": round(report["accuracy"], 4), "ci95": [round(a, 4) for a in report["accuracy_ci95"]],
            "images": report["n"], "no_digit": report["no_digit"], "ece": round(report["ece"], 4),
            "inference_seconds": round(report["seconds"], 3), "command_seconds": round(seconds, 2),
            "preprocess_ms": report["preprocess_ms"] and {k: round(v, 2) for k, v in report["preprocess_ms"].items()}}


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False),
                default=str(ROOT / "runs" / "lenet-plus" / "model_int8.tflite"))
@click.option("--robustness-limit", type=click.IntRange(min=1), help="MNIST test images per corruption (default all).")
def main(model: str, robustness_limit: int | None) -> None:
    mnist = os.environ.get("DIGITCNN_DATA", str(DATASETS / "mnist" / "mnist.npz"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        report, seconds = evaluate(model, "--data", mnist, "--report", f"{tmp}/mnist")
        results["mnist"] = scores(report, seconds)
        for name in ("usps", "semeion"):
            folder = Path(tmp) / name
            write_folder(DATASETS / name / f"{name}.npz", folder)
            results[name] = scores(*evaluate(model, "--data", str(folder), "--report", f"{tmp}/{name}-report"))
        limit = ["--limit", str(robustness_limit)] if robustness_limit else []
        report, seconds = evaluate(model, "--data", mnist, "--robustness", *limit, "--report", f"{tmp}/robust")
    robustness = {row["corruption"]: round(row["accuracy"][0], 4) for row in report["robustness"]["rows"]}
    targets = {"mnist_under_10_s": results["mnist"]["command_seconds"] < TARGETS["mnist_seconds"],
               "usps_at_least_98%": results["usps"]["accuracy"] >= TARGETS["usps"],
               "semeion_at_least_93%": results["semeion"]["accuracy"] >= TARGETS["semeion"]}
    print(json.dumps({"bench": "evaluate", "model": model, "cpus": os.cpu_count(), **results,
                      "robustness": {"images": report["robustness"]["n"], "seconds": round(seconds, 1),
                                     "accuracy": robustness},
                      "targets_met": targets}))


if __name__ == "__main__":
    main()
