"""The two networks: LeCun's LeNet-5 and a stronger LeNet-style net small enough for a Pi."""

from __future__ import annotations

import keras
from keras import layers

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


def _batch_norm(synchronized: bool) -> layers.Layer:
    # Synchronized: statistics over the global batch, so every replica and worker keeps the same
    # moving averages (and ends with identical weights). One replica needs none of its all-reduces.
    return layers.BatchNormalization(synchronized=synchronized)


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
