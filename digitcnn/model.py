"""The two networks: LeCun's LeNet-5 and a stronger LeNet-style net small enough for a Pi."""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

from edge.errors import UserError


def lenet5(synchronized: bool = False) -> keras.Model:
    """LeNet-5 (1998): C1 6@5x5, S2, C3 16@5x5, S4, C5 120, F6 84, 10 outputs; ReLU and max pooling.

    No batch norm, so `synchronized` changes nothing."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(6, 5, padding="same", activation="relu"),  # C1: 28x28 as the 32x32 original
            layers.MaxPooling2D(),
            layers.Conv2D(16, 5, activation="relu"),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dense(120, activation="relu"),
            layers.Dense(84, activation="relu"),
            layers.Dense(10),
        ],
        name="lenet5",
    )


@keras.saving.register_keras_serializable(package="digitcnn")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras' batch norm whose training step is TensorFlow's fused kernel: one op forward, one back.

    Keras 3 builds training-mode batch norm from separate ops (keras-team/keras-core#225, "BatchNorm
    is slow"): in lenet-plus on two CPU cores the four batch norms took about half of each step, and
    the fused kernel takes a step from about 46 to 34 CPU ms (issue 27, docs/benchmarks.md). The numbers
    are Keras': inputs normalised by the batch's biased variance, and moving averages updated with
    Keras' momentum and that same biased variance (the kernel returns the unbiased one, scaled back
    here). Inference, and what the kernel does not do (masks, renorm, cross-replica statistics, other
    axes), is Keras' own code, so the TFLite converter folds it as it folds any batch norm. Saved
    models name it as `digitcnn>FusedBatchNormalization`: they load wherever this module is imported.
    """

    def call(self, inputs, training=None, mask=None):
        rank = len(inputs.shape)
        fused = (training and self.trainable and mask is None and self.center and self.scale
                 and not (self.renorm or self.synchronized) and rank in (2, 4) and self.axis in (-1, rank - 1))
        if not fused:
            return super().call(inputs, training=training, mask=mask)
        x = ops.cast(inputs, "float32")  # as Keras: float32 statistics under any compute dtype
        images = x if rank == 4 else tf.reshape(x, [-1, 1, 1, x.shape[-1]])  # NHWC, as the kernel wants
        y, mean, unbiased, *_ = tf.raw_ops.FusedBatchNormV3(
            x=images, scale=ops.cast(self.gamma, "float32"), offset=ops.cast(self.beta, "float32"),
            mean=tf.constant([]), variance=tf.constant([]), epsilon=self.epsilon, exponential_avg_factor=1.0,
            data_format="NHWC", is_training=True)
        n = tf.cast(tf.size(images) // tf.shape(images)[-1], "float32")  # values per channel
        variance = unbiased * (tf.maximum(n - 1, 1) / n)  # the kernel's Bessel correction undone (n - 1 floored at 1)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return ops.cast(tf.reshape(y, tf.shape(x)), self.compute_dtype)


def _batch_norm(synchronized: bool) -> layers.Layer:
    # Synchronized: statistics over the global batch, so every replica and worker keeps the same
    # moving averages (and ends with identical weights). One replica needs none of its all-reduces,
    # and gets the fused kernel instead.
    return layers.BatchNormalization(synchronized=True) if synchronized else FusedBatchNormalization()


def _conv(filters: int, synchronized: bool) -> list[layers.Layer]:
    return [layers.Conv2D(filters, 3, use_bias=False), _batch_norm(synchronized), layers.ReLU()]


def lenet_plus(synchronized: bool = False) -> keras.Model:
    """LeNet-5's plan with batch norm and dropout, sized to reach 99.6% in minutes on two CPU cores.

    C1 and S2 are one 5x5 convolution with stride 2 (32 maps, 14x14), then come two 3x3 convolutions
    of 64 maps around a max pooling, 64 units and 10 logits: about 123k parameters (under 150 KB as
    int8) and 3.4 M multiply-adds per image, a third of the earlier pairs of 3x3 convolutions at full
    resolution, which took twice as long to train for the same accuracy (docs/train.md).
    """
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(32, 5, strides=2, padding="same", use_bias=False),
            _batch_norm(synchronized),
            layers.ReLU(),
            *_conv(64, synchronized),
            layers.MaxPooling2D(),
            *_conv(64, synchronized),
            layers.Flatten(),
            layers.Dropout(0.3),
            layers.Dense(64, use_bias=False),
            _batch_norm(synchronized),
            layers.ReLU(),
            layers.Dropout(0.3),
            layers.Dense(10),
        ],
        name="lenet_plus",
    )


MODELS = {"lenet5": lenet5, "lenet-plus": lenet_plus}


def build_model(name: str, synchronized: bool = False) -> keras.Model:
    """Outputs are logits; softmax belongs to the loss in training and to the reader at the edge.

    `synchronized`: batch norm statistics over every replica's batch (for more than one replica)."""
    if name not in MODELS:
        raise UserError(f"unknown model {name!r} (choose from {', '.join(MODELS)})")
    return MODELS[name](synchronized)
