"""digitcnn.data.load_usps_train: USPS's training split framed like MNIST, its test split never read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digitcnn.data import USPS_SHA256, find_usps, load_usps_train, with_usps
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


def test_training_finds_usps_in_the_shared_datasets_or_goes_on_without_it(datasets_dir: Path, tmp_path: Path,
                                                                          monkeypatch):
    monkeypatch.setenv("DIGITCNN_DATASETS", str(datasets_dir))
    assert find_usps(None) == datasets_dir / "usps" / "usps.npz"
    assert find_usps(tmp_path / "mine.npz") == tmp_path / "mine.npz"  # as given: loading it says if it is missing
    monkeypatch.setenv("DIGITCNN_DATASETS", str(tmp_path))
    assert find_usps(None) is None
    monkeypatch.delenv("DIGITCNN_DATASETS")
    assert find_usps(None) is None


def test_usps_digits_follow_mnists_training_digits(datasets_dir: Path):
    """USPS's digits are appended after MNIST's, which stay as they were; a share of them for a subset
    run; nothing (and no record) without a file."""
    x = np.zeros((10, 28, 28), np.uint8)
    y = np.arange(10, dtype=np.uint8)
    assert with_usps(x, y, None) == (x, y, None)
    xs, ys, record = with_usps(x, y, datasets_dir / "usps" / "usps.npz", keep=0.1)
    usps_x, usps_y = load_usps_train(datasets_dir / "usps" / "usps.npz")
    assert record == {"name": "usps-train", "sha256": USPS_SHA256, "images": 729}
    assert np.array_equal(xs, np.concatenate([x, usps_x[:729]])) and np.array_equal(ys[10:], usps_y[:729])
    assert ys.dtype == y.dtype and np.array_equal(ys[:10], y)
