"""The augmentation warp and the two networks."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from digitcnn.augment import Augmentation, augment
from digitcnn.model import build_model
from edge.errors import UserError


def _digit_batch(n: int = 8) -> tf.Tensor:
    images = np.zeros((n, 28, 28, 1), np.float32)
    images[:, 6:22, 12:16] = 1.0  # a vertical bar, like a "1"
    return tf.constant(images)


def test_zero_augmentation_is_the_identity():
    images = _digit_batch()
    out = augment(images, tf.constant([1, 2], tf.int64), Augmentation(0, 0, 0, 0, 0))
    np.testing.assert_allclose(out.numpy(), images.numpy(), atol=1e-5)


def test_rotation_alone_keeps_the_centre_and_ink():
    images = _digit_batch()
    out = augment(images, tf.constant([1, 2], tf.int64), Augmentation(rotation=30, zoom=0, shift=0, shear=0, stretch=0)).numpy()
    assert not np.allclose(out, images.numpy())
    rows, cols = np.mgrid[:28, :28]
    for image in out[..., 0]:
        assert abs((image * rows).sum() / image.sum() - 13.5) < 0.5
        assert abs((image * cols).sum() / image.sum() - 13.5) < 0.5
        assert abs(image.sum() - 64) < 4  # bilinear resampling keeps the ink


def test_augmentation_is_a_function_of_its_seed():
    images, aug = _digit_batch(), Augmentation()
    a = augment(images, tf.constant([5, 9], tf.int64), aug).numpy()
    assert np.array_equal(a, augment(images, tf.constant([5, 9], tf.int64), aug).numpy())
    assert not np.array_equal(a, augment(images, tf.constant([5, 10], tf.int64), aug).numpy())


def test_settling_halves_slant_and_width_only():
    images, seed = _digit_batch(), tf.constant([5, 9], tf.int64)
    strong = Augmentation(rotation=8, zoom=0.08, shift=0.08, shear=0.3, stretch=0.3)
    half = Augmentation(rotation=8, zoom=0.08, shift=0.08, shear=0.15, stretch=0.15)
    settled = augment(images, seed, strong, settling=True).numpy()
    np.testing.assert_array_equal(settled, augment(images, seed, half).numpy())
    assert not np.allclose(settled, augment(images, seed, strong).numpy())
    np.testing.assert_array_equal(augment(images, seed, strong, settling=tf.constant(False)).numpy(),
                                  augment(images, seed, strong).numpy())


@pytest.mark.parametrize("name, params", [("lenet5", 61_706), ("lenet-plus", None)])
def test_models_map_digits_to_ten_logits(name, params):
    model = build_model(name)
    assert model.predict(np.zeros((3, 28, 28, 1), np.float32), verbose=0).shape == (3, 10)
    if params:
        assert model.count_params() == params  # LeCun's layout, give or take the 28x28 input
    else:
        assert 80_000 < model.count_params() < 140_000  # int8 file must stay under 150 KB


def test_unknown_model_is_a_user_error():
    with pytest.raises(UserError, match="unknown model 'vgg'"):
        build_model("vgg")
