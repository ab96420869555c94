"""Pick among training runs that differ only in seed, by accuracy on a development set.

    python bench/seeds.py runs/seed-1 runs/seed-2 runs/seed-3        # prints one JSON line

The seeds spread other handwriting (Semeion) by as much as a point, and MNIST validation cannot tell
them apart (each seed holds out different images, all near 99.5%). The development set is USPS's
*training* split (7,291 digits), which no benchmark and no training uses, read through the edge
preprocessing like bench/evaluate.py's test sets. Each run's Keras model is scored; the best wins,
ties going to the lower seed. MNIST test and Semeion are left to bench/evaluate.py, so the choice
never sees them.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evaluate import DATASETS, evaluate, write_folder  # noqa: E402


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
def main(runs: tuple[str, ...]) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "usps-train"
        write_folder(DATASETS / "usps" / "usps.npz", folder, split="_train")
        for run in map(Path, runs):
            metrics = json.loads((run / "metrics.json").read_text())
            report, _ = evaluate(str(run / "model.keras"), "--data", str(folder), "--report", f"{tmp}/{run.name}")
            rows.append({"run": str(run), "seed": metrics["seed"], "val_accuracy": metrics["val_accuracy"],
                         "dev_accuracy": round(report["accuracy"], 4),
                         "dev_errors": round(report["n"] * (1 - report["accuracy"]))})
    best = max(rows, key=lambda r: (r["dev_accuracy"], -r["seed"]))
    print(json.dumps({"bench": "seeds", "dev": "usps train", "runs": rows,
                      "chosen": best["run"], "seed": best["seed"]}))


if __name__ == "__main__":
    main()
