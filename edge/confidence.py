"""When the answer is "no digit": one rule for every reader (runner, predict, camera, serve, evaluate, the page).

A model trained with label smoothing is unsure by design: its top probability on a clean MNIST digit
is about 0.9, so the right digit of a photo often lands under a fixed 0.5 and was withheld. Export
therefore fits a temperature T on the run's held-out validation images (the T that minimises their
negative log-likelihood, `fit_temperature`): the model's probabilities, sharpened by it, say how
often the top answer is right. The answer is a digit only when that calibrated top probability
reaches the threshold: never under 0.5 (the best guess is more likely right than wrong), and raised
by `fit_threshold` as far as the same validation digits allow (at most `WITHHELD` of them withheld),
since a model trained on shapes that are not digits (digitcnn/negatives.py) is unsure of such shapes
well above 0.5. Otherwise `digit` is null ("no digit here, not sure, or truly ambiguous") and the
best guess is still top[0].

Both numbers travel in the model's metadata (`confidence`) and readers apply them to the model's
final probabilities, after any adaptation (edge/adapt.py), so confidences and answers are the
calibrated ones everywhere. web/model.js does the same arithmetic. Models exported before this have
no `confidence` and answer as they always did: raw probabilities, threshold 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.adapt import base_logits, softmax

THRESHOLD = 0.5
"""The calibrated probability the top answer needs: more likely right than wrong. Also the threshold
of models exported without a `confidence` field, on their raw probabilities."""
WITHHELD = 0.0025
"""The share of the run's validation digits the fitted threshold may withhold. The target on MNIST test
is 0.5%, and test's writers are harder than validation's (MNIST's training writers): for the shipped
model (trained without negatives) a threshold withholding 0.3% of validation withholds 0.43% of test,
0.2% withholds 0.28%."""
TEMPERATURES = (0.05, 20.0)
"""The range `fit_temperature` searches."""


def calibrate(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities as softmax(log p / T), with p floored as teaching floors it (uint8 outputs have
    zeros); T = 1 returns them untouched, so models without a temperature answer exactly as before."""
    if temperature == 1:
        return probabilities
    return softmax(base_logits(probabilities) / temperature).astype(np.float32)


def _nll(probabilities: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    p = calibrate(probabilities, temperature)[np.arange(len(labels)), labels]
    return float(-np.log(np.maximum(p, 1e-12)).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray, steps: int = 60) -> float:
    """The temperature minimising the negative log-likelihood of `labels`, by golden-section search on
    log T (the likelihood is convex in 1/T); rounded to 4 decimals, as it is stored."""
    low, high = np.log(TEMPERATURES[0]), np.log(TEMPERATURES[1])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(steps):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if _nll(probabilities, labels, float(np.exp(a))) < _nll(probabilities, labels, float(np.exp(b))):
            high = b
        else:
            low = a
    return round(float(np.exp((low + high) / 2)), 4)


def fit_threshold(probabilities: np.ndarray, withheld: float = WITHHELD) -> float:
    """The largest threshold, never under THRESHOLD, that withholds at most `withheld` of the digits whose
    calibrated probabilities these are (right or wrong: a withheld digit costs the user either way);
    rounded down to 4 decimals, as it is stored, so rounding cannot withhold more."""
    top = np.sort(probabilities.max(axis=1))
    edge = float(top[min(int(withheld * len(top)), len(top) - 1)])  # under it: at most that many digits
    return max(THRESHOLD, float(np.floor(edge * 1e4) / 1e4))


@dataclass(frozen=True)
class Confidence:
    """A model's rule: its temperature, and the calibrated probability under which the answer is "no digit"."""

    temperature: float = 1.0
    threshold: float = THRESHOLD

    @classmethod
    def of(cls, meta: dict) -> Confidence:
        """The rule in a model's metadata, or today's (T = 1, 0.5) for a model exported without one."""
        rule = meta.get("confidence")
        return cls() if rule is None else cls(float(rule["temperature"]), float(rule["threshold"]))

    def calibrate(self, probabilities: np.ndarray) -> np.ndarray:
        return calibrate(probabilities, self.temperature)

    def answers(self, probabilities: np.ndarray) -> np.ndarray:
        """The digit for each row of calibrated probabilities, or -1 where the rule withholds it."""
        return np.where(probabilities.max(axis=-1) >= self.threshold, probabilities.argmax(axis=-1), -1)
