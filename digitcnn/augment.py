"""Training-time distortions of MNIST digits: one random affine warp per image.

Keras' random preprocessing layers draw from a stateful seed generator, which can neither be
replayed from a checkpoint nor run deterministically in a parallel tf.data map. Here every random
number comes from a stateless op keyed by (run seed, epoch, batch), and the warp itself is
Keras' own `ops.image.affine_transform`, applied once instead of once per distortion. The draw
(`warp_transforms`, 8 numbers an image) is apart from the resampling (`warp`, the work), so that the
resampling can run in the train step on each replica's device (`train --augment-on`, digitcnn/data.py).

Slant and width vary more than MNIST's own, because other people's handwriting does (USPS,
Semeion), but only until the last `settle_epochs`, which warp them half as much: the network ends on
digits shaped like MNIST's. With 19 epochs on lenet-plus, 6 of them settling, MNIST (three-seed
mean) stays over 99.6% and Semeion over 93%; a light warp throughout cost Semeion a point, a strong
one MNIST a few hundredths too many (docs/benchmarks.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf
from keras import ops

from digitcnn.data import IMAGE_SHAPE
from digitcnn.styles import DEFAULT_STYLES


@dataclass(frozen=True)
class Augmentation:
    rotation: float = 8.0  # degrees, uniform in [-rotation, rotation]
    zoom: float = 0.08  # scale uniform in [1 - zoom, 1 + zoom]
    shift: float = 0.08  # fraction of the side, uniform in [-shift, shift] on each axis
    shear: float = 0.3  # slant: x += shear * y, uniform in [-shear, shear]
    stretch: float = 0.3  # width alone scaled by uniform [1 - stretch, 1 + stretch]: narrow and wide hands
    settle_epochs: int = 6  # the run's last epochs, in which shear and stretch are halved
    styles: float = 0.3  # share of each styled digit redrawn once in a style MNIST lacks (digitcnn/styles.py)
    style_names: tuple[str, ...] = DEFAULT_STYLES  # which styles (digitcnn/styles.py); others by name

    def styles_record(self) -> dict:
        """The styles the run drew, for metrics.json and the model's metadata (none at a share of 0)."""
        return {"share": self.styles, "names": list(self.style_names) if self.styles else []}


def augment(images: tf.Tensor, seed: tf.Tensor, aug: Augmentation, settling: bool | tf.Tensor = False) -> tf.Tensor:
    """Warp a batch (n, 28, 28, 1) of floats with per-image random parameters drawn from `seed`;
    `settling` (one of the last epochs) halves slant and width."""
    return warp(images, warp_transforms(tf.shape(images)[0], seed, aug, settling))


def warp_transforms(n: int | tf.Tensor, seed: tf.Tensor, aug: Augmentation, settling: bool | tf.Tensor = False
                    ) -> tf.Tensor:
    """The random warps of a batch of `n` images, one row of 8 numbers each (for `warp`): the random
    draw, apart from the resampling, so that each image can carry its own warp to another device."""
    settle = 1.0 - 0.5 * tf.cast(settling, tf.float32)
    side = float(IMAGE_SHAPE[0])
    u = tf.random.stateless_uniform((n, 6), seed=seed, minval=-1.0, maxval=1.0)
    angle = u[:, 0] * aug.rotation * math.pi / 180.0
    zoom = 1.0 + u[:, 1] * aug.zoom
    shear = u[:, 2] * (aug.shear * settle)
    tx, ty = u[:, 3] * aug.shift * side, u[:, 4] * aug.shift * side
    # affine_transform maps each output pixel to the input pixel it samples: the inverse warp.
    cos, sin = tf.cos(angle) / zoom, tf.sin(angle) / zoom
    width = 1.0 + u[:, 5] * (aug.stretch * settle)
    a0, a1 = cos / width, sin + shear * cos
    b0, b1 = -sin / width, cos - shear * sin
    c = (side - 1.0) / 2.0
    a2 = c - a0 * (c + tx) - a1 * (c + ty)
    b2 = c - b0 * (c + tx) - b1 * (c + ty)
    zeros = tf.zeros_like(a0)
    return tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)


def warp(images: tf.Tensor, transforms: tf.Tensor) -> tf.Tensor:
    """Resample each image (n, 28, 28, 1) through its row of `transforms` (n, 8): image by image, so a
    share of a batch warped alone equals that share of the whole batch warped."""
    return ops.image.affine_transform(images, transforms, interpolation="bilinear", fill_mode="constant")
