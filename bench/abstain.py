"""What the "no digit" rule withholds, before and after calibration; prints one JSON line.

    python bench/abstain.py MODEL.tflite [--run RUN_DIR]    # a model exported with a `confidence` field

Compares today's rule before calibration (raw probabilities, threshold 0.5) with the model's own
(edge/confidence.py: temperature fitted at export, calibrated threshold), on the same images and the
same raw outputs, so top[0] is the same under both. Per set: images, wrong best guesses (top[0], or
no digit found), right and wrong best guesses withheld under each rule, and answers that change
(`digit` differs). Development data first: the run's MNIST validation images (its config.json, from
the metadata's run directory or --run), USPS's training split (tight 16x16 and with a 4 px margin),
and non-digits drawn here (letters and symbols in DejaVu fonts, random scribbles: any digit answered
for them is wrong). Then the evaluation sets, as a whole: photos-dev, USPS test and Semeion, framed
as bench/evaluate.py frames them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from evaluate import DATASETS, scan  # noqa: E402

from digitcnn.data import load_mnist, run_split  # noqa: E402
from edge.confidence import Confidence  # noqa: E402
from edge.labelled import frame, labelled_folder  # noqa: E402
from edge.metadata import PROBABILITIES  # noqa: E402
from edge.runner import DigitModel  # noqa: E402

FONTS = Path("/usr/share/fonts/truetype/dejavu")
SYMBOLS = "ACEFHKMNPRTUVWXYaefhkmnprtwxy#%&*+@?"  # none of them read as a digit by people
NO_DIGIT = -1


def non_digits(seed: int = 5) -> np.ndarray:
    """Framed letters and symbols (4 DejaVu faces, slightly rotated) and 150 random scribbles."""
    rng = np.random.default_rng(seed)
    faces = [ImageFont.truetype(str(FONTS / f), 80) for f in ("DejaVuSans.ttf", "DejaVuSerif-Bold.ttf",
                                                              "DejaVuSansMono.ttf", "DejaVuSans-Oblique.ttf")]
    images = []
    for symbol in SYMBOLS:
        for face in faces:
            image = Image.new("L", (120, 120))
            ImageDraw.Draw(image).text((60, 60), symbol, fill=255, font=face, anchor="mm")
            images.append(image.rotate(float(rng.uniform(-10, 10)), resample=Image.BILINEAR))
    for _ in range(150):
        image = Image.new("L", (120, 120))
        pen = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(1, 4))):
            points = [tuple(rng.uniform(15, 105, 2)) for _ in range(int(rng.integers(3, 7)))]
            pen.line(points, fill=255, width=int(rng.integers(4, 10)), joint="curve")
        images.append(image)
    return np.stack([p for p in map(frame, images) if p is not None])


def scans(name: str, split: str, margin: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """USPS or Semeion 16x16 digits framed as their scans are (bench/evaluate.py): pixels, labels, found."""
    with np.load(DATASETS / name / f"{name}.npz") as data:
        x, y = data["x" + split], data["y" + split]
    framed = [frame(scan(pixels, side=16, margin=margin)) for pixels in x]
    found = np.array([f is not None for f in framed])
    pixels = np.stack([np.zeros((28, 28), np.uint8) if f is None else f for f in framed])
    return pixels, y.astype(np.int64), found


def validation(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    config = json.loads((run / "config.json").read_text())
    mnist = load_mnist()
    _, _, x, y = run_split(mnist.x_train, mnist.y_train, val_size=config["val_size"], seed=config["seed"],
                           subset=config.get("subset"))
    return x, y.astype(np.int64), np.ones(len(y), bool)


def compare(model: DigitModel, pixels: np.ndarray, labels: np.ndarray, found: np.ndarray) -> dict:
    """Counts under today's rule and the model's, from one pass of the model (labels -1: non-digits)."""
    raw = np.zeros((len(labels), 10), np.float32)
    if found.any():
        raw[found] = model.outputs(pixels[found])[PROBABILITIES]
    best = np.where(found, raw.argmax(axis=1), NO_DIGIT)
    right = best == labels
    result = {"images": len(labels), "wrong": int((~right).sum())}
    digits = {}
    for name, rule in (("before", Confidence()), ("after", model.confidence)):
        digits[name] = np.where(found, rule.answers(rule.calibrate(raw)), NO_DIGIT)
        withheld = found & (digits[name] == NO_DIGIT)
        result[name] = {"right_withheld": int((withheld & right).sum()), "wrong_withheld": int((withheld & ~right).sum()),
                        "wrong_answered": int((found & ~withheld & ~right).sum())}
    result["changed"] = int((digits["before"] != digits["after"]).sum())
    return result


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--run", type=click.Path(exists=True, file_okay=False),
              help="The run the model was exported from (default: the metadata's source.run_dir).")
def main(model: str, run: str | None) -> None:
    digit_model = DigitModel(model)
    if "confidence" not in digit_model.meta:
        raise click.ClickException(f"{model}: no confidence field; export it again")
    run_dir = Path(run or digit_model.meta["source"]["run_dir"])
    others = non_digits()
    photos = labelled_folder(DATASETS / "photos-dev")
    sets = {
        "development": {
            "mnist_validation": validation(run_dir),
            "usps_train_tight": scans("usps", "_train", 0),
            "usps_train_margin": scans("usps", "_train", 4),
            "non_digits": (others, np.full(len(others), NO_DIGIT), np.ones(len(others), bool)),
        },
        "evaluation": {
            "photos_dev": (photos.pixels, photos.labels, photos.found),
            **{f"{name}_{crop}": scans(name, "", margin) for name in ("usps", "semeion")
               for crop, margin in (("tight", 0), ("margin", 4))},
        },
    }
    results = {kind: {name: compare(digit_model, *data) for name, data in group.items()} for kind, group in sets.items()}
    print(json.dumps({"bench": "abstain", "model": model, "confidence": digit_model.meta["confidence"], **results}))


if __name__ == "__main__":
    main()
