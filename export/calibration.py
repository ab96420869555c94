"""The representative set that fixes int8 activation ranges: training images only, never test."""

from __future__ import annotations

import numpy as np

CALIBRATION_IMAGES = 500
CALIBRATION_SEED = 0


def representative_images(x_train: np.ndarray, y_train: np.ndarray, count: int = CALIBRATION_IMAGES,
                          seed: int = CALIBRATION_SEED) -> tuple[np.ndarray, np.ndarray]:
    """At least `count` training images and their labels, the same number from every class, chosen by a
    seeded draw.

    Equal classes keep a rare digit's activations from falling outside the calibrated ranges;
    test images are left out so the accuracy measured on them stays honest. The same images give
    the feature statistics that teaching starts from.
    """
    classes = np.unique(y_train)
    per_class = -(-count // len(classes))
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(y_train == c), per_class, replace=False) for c in classes]
    chosen = np.sort(np.concatenate(picks))
    return x_train[chosen], y_train[chosen]
