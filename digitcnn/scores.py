"""The numbers of a report, from labels, answers and confidences alone (numpy only).

Answers are class indices 0-9, or 10 for "no digit" (preprocessing found none): a wrong answer
that no class is credited with.
"""

from __future__ import annotations

import math

import numpy as np

from digitcnn.data import NUM_CLASSES

Z95 = 1.959964  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion: stays inside [0, 1] and honest near 100% accuracy."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def confusion_matrix(labels: np.ndarray, answers: np.ndarray, columns: int = NUM_CLASSES) -> np.ndarray:
    """Counts [true class, answer]: 10 rows, `columns` columns (11 when "no digit" answers occur)."""
    counts = np.zeros((NUM_CLASSES, columns), np.int64)
    np.add.at(counts, (labels, answers), 1)
    return counts


def per_class(confusion: np.ndarray) -> list[dict]:
    """Precision, recall and F1 of each digit; an empty denominator scores 0."""
    rows = []
    for c in range(NUM_CLASSES):
        hits, answered, support = int(confusion[c, c]), int(confusion[:, c].sum()), int(confusion[c].sum())
        precision = hits / answered if answered else 0.0
        recall = hits / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"class": c, "precision": precision, "recall": recall, "f1": f1, "support": support})
    return rows


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> tuple[float, list[dict]]:
    """Expected calibration error over equal-width confidence bins, and the bins (reliability diagram).

    ECE is the gap |accuracy - mean confidence| of each bin, weighted by its share of the images.
    """
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        row = {"low": b / bins, "high": (b + 1) / bins, "count": count, "confidence": None, "accuracy": None}
        if count:
            row["confidence"] = float(confidence[inside].mean())
            row["accuracy"] = float(correct[inside].mean())
            ece += count / len(confidence) * abs(row["accuracy"] - row["confidence"])
        table.append(row)
    return ece, table


def rejection_curve(confidence: np.ndarray, correct: np.ndarray, steps: int = 101) -> list[dict]:
    """Accuracy on the answers kept, and the fraction kept, as the confidence threshold rises 0 -> 1."""
    points = []
    for threshold in np.linspace(0.0, 1.0, steps):
        kept = confidence >= threshold
        if not kept.any():
            break
        points.append({"threshold": round(float(threshold), 4), "answered": float(kept.mean()),
                       "accuracy": float(correct[kept].mean())})
    return points


def percentiles(values: np.ndarray, qs: tuple[int, ...] = (50, 90, 99)) -> dict | None:
    """{"p50": ..., ...} of `values`, or None when there are none."""
    if len(values) == 0:
        return None
    return {f"p{q}": float(np.percentile(values, q)) for q in qs}
