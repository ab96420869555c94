"""Teaching a model someone's handwriting: a small correction to its answers, fitted to a few of their digits.

The model's penultimate features (its `features` output) are where its last layer separates the
digits. Teaching fits a residual linear head on them, leaving the network untouched:

    adapted logits = log(base probabilities) + W . unit(features - mean)

W is a logistic regression on the samples with the base log-probabilities as a fixed offset, so it
learns only what the base model gets wrong or unsure, with an L2 penalty that keeps it small. Ten
anchors join the samples: MNIST's own class means, recorded at export, each labelled as the base
model reads it; without them, a digit taught alone learns to claim everything. W's rows for digits
without samples stay zero, so their scores are the base model's. The fit is a fixed number of
Nesterov gradient steps in float64: deterministic, well under a second, and the same arithmetic
in web/adapt.js, whose results the tests compare with these.

The penalty and the anchor weight were chosen by bench/teach_tune.py's grid on development data
(MNIST and USPS training digits, MNIST validation digits), never on the sets bench/teach.py scores.
"""

from __future__ import annotations

import numpy as np

from edge.errors import UserError

DIGITS = 10
PENALTY = 3e-5
"""L2 penalty on W (per sample): smaller fits the samples harder and risks the digits not taught."""
STEPS = 300
"""Nesterov steps, a fixed number so that every run and the page fit alike (1,000 scored the same on
development data)."""
ANCHOR_WEIGHT = 0.3
"""Each anchor counts as this many samples."""
FLOOR = 1 / 512
"""Base probabilities are floored here before the log: half of a uint8 output's smallest step."""
STATS_DECIMALS = 4
"""Feature statistics go into the metadata rounded to this many decimals: under 3 KB deflated, and
0.5e-4 is far below what separates two digits' features."""
FEW = 3
"""A digit with fewer samples than this is fitted, with a warning: on development data one sample per
digit gained a third of what five did."""


def unit(features: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Features centred on MNIST's mean and scaled to length 1: only their direction counts."""
    centred = np.asarray(features, np.float64) - mean
    return centred / np.maximum(np.linalg.norm(centred, axis=-1, keepdims=True), 1e-12)


def base_logits(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.asarray(probabilities, np.float64), FLOOR))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def feature_statistics(features: np.ndarray, probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """What export records about a model's features on MNIST training images, for teaching to start from:
    their mean, each digit's mean direction (the anchors) and how the model reads that digit on average."""
    mean = features.astype(np.float64).mean(axis=0)
    directions = unit(features, mean)
    anchors = np.stack([directions[labels == d].mean(axis=0) for d in range(DIGITS)])
    logits = base_logits(probabilities)
    return {"mean": np.round(mean, STATS_DECIMALS).tolist(),
            "class_means": np.round(anchors / np.linalg.norm(anchors, axis=1, keepdims=True), STATS_DECIMALS).tolist(),
            "class_log_probabilities": np.round(np.stack([logits[labels == d].mean(axis=0) for d in range(DIGITS)]),
                                                STATS_DECIMALS).tolist()}


def _fit(x: np.ndarray, targets: np.ndarray, offsets: np.ndarray, weights: np.ndarray, taught: np.ndarray,
         penalty: float) -> np.ndarray:
    """W minimising the weighted cross-entropy of softmax(offsets + x W^T) plus penalty/2 |W|^2, rows of
    untaught digits held at zero. Step 1/L with L = max |x|^2 / 2 + penalty bounds the curvature."""
    step = 1 / (0.5 * float((x * x).sum(axis=1).max()) + penalty)
    total = weights.sum()
    w = np.zeros((DIGITS, x.shape[1]))
    ahead, t = w, 1.0
    for _ in range(STEPS):
        residual = (softmax(offsets + x @ ahead.T) - targets) * weights[:, None]
        gradient = residual.T @ x / total + penalty * ahead
        new = (ahead - step * gradient) * taught[:, None]
        t_new = (1 + np.sqrt(1 + 4 * t * t)) / 2
        ahead = new + (t - 1) / t_new * (new - w)
        w, t = new, t_new
    return w


def require_features(meta: dict, where: str = "") -> None:
    """Teaching starts from the features output and its statistics, which models exported before
    teaching existed lack: say so, and how to fix it (`where` names the model)."""
    if "features" not in meta:
        raise UserError(f"{where}{': ' if where else ''}this model has no features output, so it cannot be taught; "
                        "re-export it with `cli.py export` (it was exported before teaching existed)")


def fit(features: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, meta: dict, *, penalty: float = PENALTY,
        anchor_weight: float = ANCHOR_WEIGHT) -> dict:
    """The adaptation (JSON-ready) for samples: their (n, d) features, digits and (n, 10) base probabilities.
    (`penalty` and `anchor_weight` are parameters for bench/teach_tune.py, which chose the defaults.)"""
    require_features(meta)
    stats = meta["features"]
    mean = np.array(stats["mean"], np.float64)
    labels = np.asarray(labels, np.int64)
    counts = np.bincount(labels, minlength=DIGITS)
    x = np.vstack([unit(features, mean), np.array(stats["class_means"], np.float64)])
    targets = np.eye(DIGITS)[np.concatenate([labels, np.arange(DIGITS)])]
    offsets = np.vstack([base_logits(probabilities), np.array(stats["class_log_probabilities"], np.float64)])
    weights = np.concatenate([np.ones(len(labels)), np.full(DIGITS, anchor_weight)])
    w = _fit(x, targets, offsets, weights, (counts > 0).astype(np.float64), penalty)
    return {"version": 1, "samples": counts.tolist(), "center": stats["mean"], "weights": w.tolist()}


class Adapter:
    """A fitted adaptation ready to adapt a model's answers: its arrays are converted once, not per image."""

    def __init__(self, adaptation: dict):
        self.center = np.asarray(adaptation["center"], np.float64)
        self.weights = np.asarray(adaptation["weights"], np.float64)

    def __call__(self, probabilities: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Adapted (n, 10) float32 probabilities from the base model's probabilities and features."""
        return softmax(base_logits(probabilities) + unit(features, self.center) @ self.weights.T).astype(np.float32)


def review(features: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, meta: dict) -> list[dict]:
    """What a user should know about their samples before trusting the adaptation, as records:
    {"kind": "missing", "digit"}: no samples, so the base model reads that digit as before;
    {"kind": "few", "digit", "count"}: fewer than FEW samples;
    {"kind": "unlike", "digit", "index", "reads_as", "alone"}: the base model reads sample `index` as
    another digit, and either it is the digit's only sample (`alone`: a wrong label, or a style one
    sample cannot show) or the sample most like it is one of the user's `reads_as` samples. (A new
    style's samples are most like each other, however the base model reads them.)"""
    labels = np.asarray(labels, np.int64)
    counts = np.bincount(labels, minlength=DIGITS)
    issues: list[dict] = [{"kind": "missing", "digit": d} for d in range(DIGITS) if counts[d] == 0]
    issues += [{"kind": "few", "digit": d, "count": int(counts[d])} for d in range(DIGITS) if 0 < counts[d] < FEW]
    x = unit(features, np.array(meta["features"]["mean"], np.float64))
    similarity = x @ x.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = labels[similarity.argmax(axis=1)] if len(labels) > 1 else labels
    for i, (digit, read) in enumerate(zip(labels.tolist(), np.argmax(probabilities, axis=1).tolist())):
        alone = bool(counts[digit] == 1)
        if read != digit and (alone or nearest[i] == read):
            issues.append({"kind": "unlike", "digit": digit, "index": i, "reads_as": read, "alone": alone})
    return issues


def describe(issue: dict, name: str) -> str:
    """One line for a review record; `name` says which sample (a file, say) an "unlike" record means."""
    digit = issue["digit"]
    if issue["kind"] == "missing":
        return f"digit {digit}: no samples, so the base model reads it as before"
    if issue["kind"] == "few":
        count = issue["count"]
        return f"digit {digit}: only {count} sample{'s' * (count > 1)}; {FEW} or more adapt the model more surely"
    if issue["alone"]:
        return (f"digit {digit}: {name}, its only sample, reads as {issue['reads_as']}: "
                "a wrong label, or a style that one sample cannot teach")
    return (f"digit {digit}: {name} reads as {issue['reads_as']} and looks most like one of your "
            f"{issue['reads_as']}s: check its label")
