"""Benchmark teaching (issue 15): writers the model never saw, adapted with a few samples each; one JSON line.

    python bench/teach.py [MODEL.tflite] [--seeds 5] [--no-page]    # default runs/lenet-plus/model_int8.tflite

USPS: k samples per digit drawn from USPS's training split adapt the model, the USPS test set is
scored (target >= 99.0% at k = 5). Semeion: each seed splits it, k per digit to adapt, the rest
scored (target >= 97% at k = 5). k = 1, 5 and 10, over `--seeds` seeds of the draw (mean, spread,
and the base model on the same images). MNIST: k = 5 MNIST training images per digit, the MNIST
test set scored (no more than 0.1 points below the base model). USPS and Semeion digits go through
the edge preprocessing as cropped scans, as in bench/evaluate.py. Time to adapt at k = 5: `teach`
on a folder of 50 PNG files, in this process (target < 1 s), and the phone page adapting to 50 kept
samples in headless Chromium (target < 2 s). The scores come from edge/adapt.py on the model's
outputs; one adapted model written by `teach` is also run through the runner to check they agree.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from evaluate import DATASETS, scan  # noqa: E402
from edge.adapt import Adapter, fit  # noqa: E402
from edge.metadata import FEATURES, PROBABILITIES  # noqa: E402
from edge.preprocess import NoDigit, to_mnist  # noqa: E402
from edge.runner import DigitModel  # noqa: E402

KS = (1, 5, 10)
TARGETS = {"usps": 0.99, "semeion": 0.97, "mnist_drop": 0.001, "python_seconds": 1.0, "page_seconds": 2.0}


def framed(x: np.ndarray) -> np.ndarray:
    """16x16 digits as the edge frames their scans (a blank where it finds no digit, read as wrong)."""
    out = np.zeros((len(x), 28, 28), np.uint8)
    for i, pixels in enumerate(x):
        try:
            out[i] = to_mnist(scan(pixels))
        except NoDigit:
            pass
    return out


class Scored:
    """A model's outputs on one labelled set, computed once; adaptations are then only numpy."""

    def __init__(self, model: DigitModel, pixels: np.ndarray, labels: np.ndarray):
        outputs = [model.outputs(pixels[i:i + 1000]) for i in range(0, len(pixels), 1000)]
        self.features = np.concatenate([o[FEATURES] for o in outputs])
        self.probabilities = np.concatenate([o[PROBABILITIES] for o in outputs])
        self.labels = labels.astype(np.int64)

    def take(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.features[rows], self.labels[rows], self.probabilities[rows]


def draw(labels: np.ndarray, k: int, rng: np.random.Generator, pool: np.ndarray | None = None) -> np.ndarray:
    """k indices per digit, from `pool` (default all)."""
    pool = np.arange(len(labels)) if pool is None else pool
    return np.concatenate([rng.choice(pool[labels[pool] == d], k, replace=False) for d in range(10)])


def accuracies(meta: dict, samples: tuple, scored: Scored, rows: np.ndarray, **fit_options) -> tuple[float, float]:
    """(base, adapted) accuracy on `scored`'s `rows` after adapting to `samples` (features, labels, probabilities)."""
    adapter = Adapter(fit(*samples, meta, **fit_options))
    labels = scored.labels[rows]
    adapted = adapter(scored.probabilities[rows], scored.features[rows]).argmax(axis=1)
    return float(np.mean(scored.probabilities[rows].argmax(axis=1) == labels)), float(np.mean(adapted == labels))


def summary(pairs: list[tuple[float, float]]) -> dict:
    base, adapted = np.array(pairs).T
    return {"base": round(float(base.mean()), 4), "adapted": round(float(adapted.mean()), 4),
            "sd": round(float(adapted.std()), 4), "min": round(float(adapted.min()), 4),
            "max": round(float(adapted.max()), 4), "seed0": float(adapted[0])}


def usps_and_semeion(model: DigitModel, seeds: int) -> tuple[dict, dict]:
    with np.load(DATASETS / "usps" / "usps.npz") as usps, np.load(DATASETS / "semeion" / "semeion.npz") as semeion:
        usps_train = Scored(model, framed(usps["x_train"]), usps["y_train"])
        usps_test = Scored(model, framed(usps["x"]), usps["y"])
        sem = Scored(model, framed(semeion["x"]), semeion["y"])
    everything = np.arange(len(usps_test.labels))
    results: dict = {"usps": {}, "semeion": {}}
    for k in KS:
        usps_runs, semeion_runs = [], []
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            usps_runs.append(accuracies(model.meta, usps_train.take(draw(usps_train.labels, k, rng)), usps_test,
                                        everything))
            picked = draw(sem.labels, k, rng)
            semeion_runs.append(accuracies(model.meta, sem.take(picked), sem,
                                           np.setdiff1d(np.arange(len(sem.labels)), picked)))
        results["usps"][f"k{k}"], results["semeion"][f"k{k}"] = summary(usps_runs), summary(semeion_runs)
    return results["usps"], results["semeion"]


def mnist(model: DigitModel, seeds: int, data: str) -> dict:
    with np.load(data) as d:
        train = Scored(model, d["x_train"], d["y_train"])
        test = Scored(model, d["x_test"], d["y_test"])
    runs = [accuracies(model.meta, train.take(draw(train.labels, 5, np.random.default_rng(seed))), test,
                       np.arange(len(test.labels))) for seed in range(seeds)]
    return {"k5": summary(runs)}


def python_timing(model_path: str) -> dict:
    """`teach` on 50 USPS training scans (k = 5, seed 0's draw) in this process, and the USPS test accuracy
    of the adapted model it writes, run by the runner: the numpy path must have scored the same."""
    from edge.teach import teach

    with np.load(DATASETS / "usps" / "usps.npz") as usps:
        x, y, x_test, y_test = usps["x_train"], usps["y_train"], usps["x"], usps["y"]
    picked = draw(y, 5, np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "samples"
        folder.mkdir()
        for i in picked:
            scan(x[i]).save(folder / f"{y[i]}_{i:05d}.png")
        seconds = []
        for _ in range(3):
            started = time.perf_counter()
            taught = teach(folder, Path(model_path), Path(tmp) / "taught.tflite")
            seconds.append(time.perf_counter() - started)
        runner = float(np.mean(DigitModel(taught.path).probabilities(framed(x_test)).argmax(axis=1) == y_test))
    return {"teach_seconds": round(min(seconds), 3), "teach_seconds_each": [round(s, 3) for s in seconds],
            "runner_usps_k5_seed0": runner}


def page_timing(model_path: str, data: str) -> dict:
    """The page adapting to 50 kept samples (MNIST test digits, 5 per digit): model runs and fit, in the page."""
    from browser import PHONE, chromium, missing, serving, wait_ready

    reason = missing()
    if reason:
        raise click.ClickException(reason)
    with np.load(data) as d:
        x, y = d["x_test"], d["y_test"]
    picked = draw(y, 5, np.random.default_rng(0))
    kept = json.dumps([{"digit": int(y[i]), "pixels": base64.b64encode(x[i].tobytes()).decode()} for i in picked])
    times = []
    with serving(model_path) as url, chromium() as browser:
        for _ in range(3):
            context = browser.new_context(**PHONE)
            page = context.new_page()
            page.add_init_script(f"localStorage.setItem('digitcnn.samples', {json.dumps(kept)})")
            page.goto(url)
            wait_ready(page)
            times.append(page.evaluate("window.digitcnn.teach.adaptMs") / 1000)
            context.close()
    return {"adapt_seconds": round(min(times), 3), "adapt_seconds_each": [round(t, 3) for t in times]}


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False),
                default=str(ROOT / "runs" / "lenet-plus" / "model_int8.tflite"))
@click.option("--seeds", type=click.IntRange(min=1), default=5, show_default=True, help="Seeds of the sample draw.")
@click.option("--page/--no-page", default=True, show_default=True, help="Time the phone page too (Chromium).")
def main(model: str, seeds: int, page: bool) -> None:
    data = os.environ.get("DIGITCNN_DATA", str(DATASETS / "mnist" / "mnist.npz"))
    digit_model = DigitModel(model)
    usps, semeion = usps_and_semeion(digit_model, seeds)
    mnist_scores = mnist(digit_model, seeds, data)
    python = python_timing(model)
    python["runner_agrees"] = python.pop("runner_usps_k5_seed0") == usps["k5"]["seed0"]
    page_times = page_timing(model, data) if page else None
    targets = {
        "usps_k5_at_least_99%": usps["k5"]["adapted"] >= TARGETS["usps"],
        "semeion_k5_at_least_97%": semeion["k5"]["adapted"] >= TARGETS["semeion"],
        "mnist_k5_within_0.1_points": mnist_scores["k5"]["adapted"] >= mnist_scores["k5"]["base"] - TARGETS["mnist_drop"],
        "python_under_1_s": python["teach_seconds"] < TARGETS["python_seconds"],
        "page_under_2_s": page_times is not None and page_times["adapt_seconds"] < TARGETS["page_seconds"],
    }
    print(json.dumps({"bench": "teach", "model": model, "seeds": seeds, "cpus": os.cpu_count(), "usps": usps,
                      "semeion": semeion, "mnist": mnist_scores, "python": python, "page": page_times,
                      "targets_met": targets}))


if __name__ == "__main__":
    main()
