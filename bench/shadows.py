"""Soft shadows over phone photos of a digit: accuracy shadowed vs the same photos unshadowed; one JSON line.

    python bench/shadows.py [MODEL.tflite] [--count 150] [--seed 0]

A rendered development set (tests/shadowed.py; never photos-dev, never MNIST test): MNIST *training* digits drawn as
dark ink about 200 px tall on a 1500x1200 photo of paper (tint, texture, a gentle light gradient,
noise, a little blur, JPEG), each photo rendered twice, with and without a soft shadow darkening
part of the page to 55-70%. Three families: `corner` (a diagonal edge cuts off a corner), `side`
(a near-straight edge across the page from one side) and `edge` (the shadow's edge runs through
the digit itself, the hardest). Every photo goes the way `predict` reads a file: JPEG bytes ->
load_image -> to_mnist -> the model (edge runner). Target: shadowed within 1 point of unshadowed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from edge.preprocess import NoDigit, load_image, to_mnist  # noqa: E402
from edge.runner import DigitModel  # noqa: E402
from edge.shipped import SHIPPED_MODEL  # noqa: E402
from shadowed import KINDS, render  # noqa: E402

DATASETS = Path(os.environ.get("DIGITCNN_DATASETS", ROOT.parent / "shared" / "datasets"))
TARGET_POINTS = 1.0


def read(model: DigitModel, photos: list[bytes]) -> tuple[np.ndarray, float]:
    """Digits read (-1: no digit found or withheld) and the mean preprocessing time in ms."""
    pixels, found, spent = [], [], 0.0
    for i, data in enumerate(photos):
        image = load_image(data, name=f"photo {i}")
        started = time.perf_counter()
        try:
            pixels.append(to_mnist(image))
            found.append(True)
        except NoDigit:
            pixels.append(np.zeros((28, 28), np.uint8))
            found.append(False)
        spent += time.perf_counter() - started
    readings = model.read(np.stack(pixels))
    digits = np.array([r.digit if r.digit is not None and ok else -1 for r, ok in zip(readings, found)])
    return digits, 1000 * spent / len(photos)


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False), default=str(SHIPPED_MODEL))
@click.option("--count", type=click.IntRange(1, 2000), default=150, show_default=True, help="Digits per shadow kind.")
@click.option("--seed", type=int, default=0, show_default=True)
def main(model: str, count: int, seed: int) -> None:
    mnist = np.load(os.environ.get("DIGITCNN_DATA", DATASETS / "mnist" / "mnist.npz"))
    x, y = mnist["x_train"], mnist["y_train"]  # training digits only: the test split stays unseen
    net = DigitModel(model)
    rng = np.random.default_rng(seed)
    rows, ms = {}, []
    for k, kind in enumerate(KINDS):
        picks = rng.choice(len(x), count, replace=False)
        pairs = [render(x[i], kind, seed * 100_000 + k * 10_000 + j) for j, i in enumerate(picks)]
        plain, plain_ms = read(net, [p for p, _ in pairs])
        shaded, shaded_ms = read(net, [s for _, s in pairs])
        ms += [plain_ms, shaded_ms]
        rows[kind] = {"unshadowed": round(float((plain == y[picks]).mean()), 4),
                      "shadowed": round(float((shaded == y[picks]).mean()), 4),
                      "no_digit_shadowed": int((shaded == -1).sum())}
    plain = float(np.mean([r["unshadowed"] for r in rows.values()]))
    shaded = float(np.mean([r["shadowed"] for r in rows.values()]))
    gap = round(100 * (plain - shaded), 2)
    print(json.dumps({"bench": "shadows", "model": model, "digits_per_kind": count, "seed": seed,
                      "unshadowed": round(plain, 4), "shadowed": round(shaded, 4), "gap_points": gap,
                      "kinds": rows, "preprocess_ms": round(float(np.mean(ms)), 1),
                      "targets_met": {f"shadowed_within_{TARGET_POINTS:g}_point": gap <= TARGET_POINTS}}))


if __name__ == "__main__":
    main()
