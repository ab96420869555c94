"""digitcnn.data.load_usps_train: USPS's training split framed like MNIST, its test split never read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digitcnn.data import load_usps_train
from edge.errors import UserError
from edge.preprocess import is_mnist_framed


def test_usps_training_split_is_framed_like_mnist(datasets_dir: Path):
    x, y = load_usps_train(datasets_dir / "usps" / "usps.npz")
    assert x.shape == (7291, 28, 28) and x.dtype == np.uint8 and y.shape == (7291,)
    assert set(np.unique(y)) == set(range(10))
    assert all(is_mnist_framed(a) for a in x)


def test_a_file_that_is_not_the_known_usps_is_refused(tmp_path: Path):
    fake = tmp_path / "usps.npz"
    np.savez(fake, x_train=np.zeros((2, 16, 16), np.uint8), y_train=np.zeros(2, np.int64))
    with pytest.raises(UserError, match="sha256"):
        load_usps_train(fake)
    with pytest.raises(UserError, match="no such file"):
        load_usps_train(tmp_path / "missing.npz")
