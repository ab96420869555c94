"""Shapes that are not digits: the share answered "no digit" or "not sure"; prints one JSON line.

    python bench/not_digits.py [MODEL.tflite] [--count 40] [--seed 0]

Per family of tests/negatives.py (dots, dashes, specks, letters, symbols, scribbles, parts of MNIST
training digits), `--count` photos each, read as `predict` reads a file: JPEG bytes -> load_image ->
to_mnist (its shape rules say "no digit" before the model runs) -> the model, whose calibrated
confidence under the metadata's threshold says "not sure" (edge/confidence.py). Families stay
separate, and are summed in three groups: those the shape rules answer (dot, dash, speck), those
with kin among the training negatives (digitcnn/negatives.py's DEV_TRAINED), and those never trained
on (DEV_HELD_OUT): the honest measure of shapes the network has not seen. `negatives` is what the
model's run trained on (its metadata's source.config), 0 for a model trained without them.
The cost on digits: MNIST test as it is (the model's "not sure" share) and padded by 10 px, so every
digit goes through the shape rules (how many they reject: target 0).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from digitcnn.negatives import DEV_HELD_OUT, DEV_TRAINED  # noqa: E402
from edge.metadata import load_metadata  # noqa: E402
from edge.preprocess import NoDigit, load_image, to_mnist  # noqa: E402
from edge.runner import DigitModel  # noqa: E402
from edge.shipped import SHIPPED_MODEL  # noqa: E402
from negatives import FAMILIES, photograph, shape  # noqa: E402

DATASETS = Path(os.environ.get("DIGITCNN_DATASETS", ROOT.parent / "shared" / "datasets"))
TARGET_REFUSED, TARGET_WITHHELD = 0.9, 0.005


def answers(model: DigitModel, images: list[Image.Image]) -> tuple[int, int]:
    """(how many found no digit, how many the model was not sure of) among `images`."""
    pixels = []
    for image in images:
        try:
            pixels.append(to_mnist(image))
        except NoDigit:
            pass
    unsure = sum(r.digit is None for r in model.read(np.stack(pixels))) if pixels else 0
    return len(images) - len(pixels), unsure


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False), default=str(SHIPPED_MODEL))
@click.option("--count", type=click.IntRange(1, 1000), default=40, show_default=True, help="Photos per family.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--mnist-limit", type=click.IntRange(1, 10_000), default=10_000, show_default=True,
              help="MNIST test digits padded through the shape rules.")
def main(model: str, count: int, seed: int, mnist_limit: int) -> None:
    mnist = np.load(os.environ.get("DIGITCNN_DATA", DATASETS / "mnist" / "mnist.npz"))
    net = DigitModel(model)
    rng = np.random.default_rng(seed)
    families, refused_all = {}, 0
    for family in FAMILIES:
        photos = [load_image(photograph(shape(family, rng, mnist["x_train"]), rng)) for _ in range(count)]
        no_digit, unsure = answers(net, photos)
        refused_all += no_digit + unsure
        families[family] = {"no_digit": round(no_digit / count, 3), "not_sure": round(unsure / count, 3),
                            "refused": round((no_digit + unsure) / count, 3)}
    x = mnist["x_test"]
    withheld = float(np.mean([r.digit is None for r in net.read(x)]))
    rejected = sum(_rejected(Image.fromarray(np.pad(a, 10))) for a in x[:mnist_limit])
    refused = refused_all / (count * len(FAMILIES))
    groups = {"shape_rules": [f for f in FAMILIES if f not in DEV_TRAINED + DEV_HELD_OUT],
              "trained": list(DEV_TRAINED), "held_out": list(DEV_HELD_OUT)}
    config = load_metadata(model).get("source", {}).get("config", {})
    print(json.dumps({"bench": "not_digits", "model": model, "per_family": count, "seed": seed,
                      "negatives": config.get("negatives", 0), "refused": round(refused, 3),
                      **{f"refused_{group}": round(float(np.mean([families[f]["refused"] for f in members])), 3)
                         for group, members in groups.items()},
                      "groups": groups, "families": families,
                      "mnist_test_not_sure": round(withheld, 4),
                      "mnist_padded_rejected_by_shape": rejected, "mnist_padded": min(mnist_limit, len(x)),
                      "targets_met": {f"refused_at_least_{TARGET_REFUSED:.0%}": refused >= TARGET_REFUSED,
                                      f"held_out_refused_at_least_{TARGET_REFUSED:.0%}":
                                          all(families[f]["refused"] >= TARGET_REFUSED for f in DEV_HELD_OUT),
                                      f"mnist_not_sure_at_most_{TARGET_WITHHELD:.1%}": withheld <= TARGET_WITHHELD,
                                      "mnist_none_rejected_by_shape": rejected == 0}}))


def _rejected(image: Image.Image) -> bool:
    try:
        to_mnist(image)
    except NoDigit:
        return True
    return False


if __name__ == "__main__":
    main()
