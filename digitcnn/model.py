"""The two networks: LeCun's LeNet-5 and a stronger LeNet-style net small enough for a Pi."""

from __future__ import annotations

import keras
from keras import layers

from edge.errors import UserError


def lenet5() -> keras.Model:
    """LeNet-5 (1998): C1 6@5x5, S2, C3 16@5x5, S4, C5 120, F6 84, 10 outputs; ReLU and max pooling."""
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


def _batch_norm() -> layers.Layer:
    # Synchronized: statistics over the global batch, so every replica and worker keeps the same
    # moving averages (and ends with identical weights); a no-op on one device.
    return layers.BatchNormalization(synchronized=True)


def _conv(filters: int) -> list[layers.Layer]:
    return [layers.Conv2D(filters, 3, use_bias=False), _batch_norm(), layers.ReLU()]


def lenet_plus() -> keras.Model:
    """LeNet's conv-pool-conv-pool-dense shape with pairs of 3x3 convs, batch norm and dropout.

    About 132k parameters: under 150 KB as an int8 TFLite file, a few MFLOPs per image.
    """
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            *_conv(32),
            *_conv(32),
            layers.MaxPooling2D(),
            *_conv(64),
            *_conv(64),
            layers.MaxPooling2D(),
            layers.Flatten(),
            layers.Dropout(0.3),
            layers.Dense(64, use_bias=False),
            _batch_norm(),
            layers.ReLU(),
            layers.Dropout(0.3),
            layers.Dense(10),
        ],
        name="lenet_plus",
    )


MODELS = {"lenet5": lenet5, "lenet-plus": lenet_plus}


def build_model(name: str) -> keras.Model:
    """Outputs are logits; softmax belongs to the loss in training and to the reader at the edge."""
    if name not in MODELS:
        raise UserError(f"unknown model {name!r} (choose from {', '.join(MODELS)})")
    return MODELS[name]()
