"""Benchmark `cli.py evaluate` as a user runs it; prints one JSON line.

    python bench/evaluate.py [MODEL.tflite] [--robustness-limit N]    # default runs/lenet-plus/model_int8.tflite

MNIST test accuracy and the wall time of the whole command (target under 10 s). USPS test and
Semeion twice: tight-cropped (the raw 16x16 digits, ink touching the border, as people crop) and with
a 4 px margin, and the gap between the two, written out as labelled PNG folders and read through the
labelled-folder path, so every digit goes through the edge's preprocessing as a photo would.
photos-dev (real photos, scans and screen drawings) as a whole and per source, the middle part of
`<label>_<source>_<n>.<ext>`, read the same way. Then the robustness table. Datasets come from
$DIGITCNN_DATASETS (default ../shared/datasets).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import click
import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from digitcnn.evaluate import evaluate as run_model, labelled_folder, open_model  # noqa: E402

DATASETS = Path(os.environ.get("DIGITCNN_DATASETS", ROOT.parent / "shared" / "datasets"))
# A scan of the 16x16 digits: 48 px with an 8 px margin (bench/seeds.py's development set).
SIDE, MARGIN = 48, 8
TARGETS = {"mnist_seconds": 10.0, "usps": 0.985, "semeion": 0.95, "gap_points": 0.5, "photos": 0.98,
           "photos_source": 0.8}


def scan(pixels: np.ndarray, *, side: int = SIDE, margin: int = MARGIN) -> Image.Image:
    """A 16x16 USPS or Semeion digit as a cropped scan of it would look: scaled to `side` px (16: as it
    is) within `margin` px of paper, for the edge preprocessing."""
    image = Image.fromarray(pixels)
    if image.size != (side, side):
        image = image.resize((side, side), Image.BICUBIC)
    return ImageOps.expand(image, margin, fill=0)


def write_folder(npz: Path, folder: Path, split: str = "", *, side: int = SIDE, margin: int = MARGIN) -> int:
    """The npz's digits (`x`, `y`: the test set; `x_train`, `y_train` with split="_train") as
    `<digit>_<i>.png` scans (see `scan`); returns how many."""
    with np.load(npz) as data:
        x, y = data["x" + split], data["y" + split]
    folder.mkdir(parents=True)
    for i, (pixels, label) in enumerate(zip(x, y)):
        scan(pixels, side=side, margin=margin).save(folder / f"{label}_{i:05d}.png")
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


def tight_and_margin(model: str, name: str, tmp: Path) -> dict:
    """USPS test or Semeion, raw 16x16 (tight) and with a 4 px margin, and the gap in points."""
    results = {}
    for crop, margin in (("tight", 0), ("margin", 4)):
        folder = tmp / f"{name}-{crop}"
        write_folder(DATASETS / name / f"{name}.npz", folder, side=16, margin=margin)
        results[crop] = scores(*evaluate(model, "--data", str(folder), "--report", str(tmp / f"{folder.name}-report")))
    results["gap_points"] = round(100 * (results["margin"]["accuracy"] - results["tight"]["accuracy"]), 2)
    return results


def photos(model: str, folder: Path) -> dict:
    """photos-dev through the labelled-folder path, overall and per source, with the images missed."""
    evaluation = run_model(open_model(model), labelled_folder(folder))
    by_source: dict[str, list[tuple[str, bool]]] = defaultdict(list)
    for name, right in zip(evaluation.data.names, evaluation.correct):
        by_source[Path(name).stem.split("_")[1]].append((Path(name).name, bool(right)))
    return {"accuracy": round(evaluation.accuracy, 4), "images": len(evaluation.data),
            "no_digit": int((~evaluation.data.found).sum()), "skipped": evaluation.data.skipped,
            "sources": {source: {"accuracy": round(float(np.mean([r for _, r in rows])), 4), "images": len(rows),
                                 "missed": [n for n, r in rows if not r]} for source, rows in sorted(by_source.items())}}


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
            results[name] = tight_and_margin(model, name, Path(tmp))
        results["photos_dev"] = photos(model, DATASETS / "photos-dev")
        limit = ["--limit", str(robustness_limit)] if robustness_limit else []
        report, seconds = evaluate(model, "--data", mnist, "--robustness", *limit, "--report", f"{tmp}/robust")
    robustness = {row["corruption"]: round(row["accuracy"][0], 4) for row in report["robustness"]["rows"]}
    worst_source = min(s["accuracy"] for s in results["photos_dev"]["sources"].values())
    targets = {"mnist_under_10_s": results["mnist"]["command_seconds"] < TARGETS["mnist_seconds"],
               **{f"{name}_at_least_{TARGETS[name]:.1%}_both_crops": min(results[name]["tight"]["accuracy"],
                                                                         results[name]["margin"]["accuracy"])
                  >= TARGETS[name] for name in ("usps", "semeion")},
               **{f"{name}_gap_under_{TARGETS['gap_points']}_points": abs(results[name]["gap_points"])
                  < TARGETS["gap_points"] for name in ("usps", "semeion")},
               "photos_dev_at_least_98%": results["photos_dev"]["accuracy"] >= TARGETS["photos"],
               "photos_dev_no_source_under_80%": worst_source >= TARGETS["photos_source"]}
    print(json.dumps({"bench": "evaluate", "model": model, "cpus": os.cpu_count(), **results,
                      "robustness": {"images": report["robustness"]["n"], "seconds": round(seconds, 1),
                                     "accuracy": robustness},
                      "targets_met": targets}))


if __name__ == "__main__":
    main()
