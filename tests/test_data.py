"""MNIST loading from npz and IDX, its error messages, and the seeded tf.data pipeline."""

from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pytest

from conftest import run_cli
from digitcnn import data
from edge.errors import UserError


def test_shared_npz_loads_and_is_recognised(mnist_npz):
    m = data.load_mnist(mnist_npz)
    assert m.x_train.shape == (60000, 28, 28) and m.x_test.shape == (10000, 28, 28)
    assert m.x_train.dtype == np.uint8 and set(np.unique(m.y_test)) == set(range(10))
    assert m.verified != "shape and range only"  # its checksum is a known one


def test_shared_idx_test_split_equals_npz(datasets_dir, mnist_npz):
    idx = data.load_mnist(datasets_dir / "mnist", train=False)
    npz = data.load_mnist(mnist_npz, train=False)
    assert np.array_equal(idx.x_test, npz.x_test) and np.array_equal(idx.y_test, npz.y_test)
    assert idx.x_train is None and "official md5" in idx.verified


def test_idx_folder_without_training_images_names_the_missing_file(datasets_dir):
    with pytest.raises(UserError, match="train-images-idx3-ubyte"):
        data.load_mnist(datasets_dir / "mnist")


def _write_idx(path, array: np.ndarray, compress: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


def test_synthetic_idx_folder(tmp_path, tiny_npz):
    # Plain files: a gzipped file under an official name must match the official checksum.
    tiny = np.load(tiny_npz)
    for key, name in data.IDX_NAMES.items():
        _write_idx(tmp_path / name, tiny[key], compress=False)
    m = data.load_mnist(tmp_path)
    assert np.array_equal(m.x_train, tiny["x_train"]) and np.array_equal(m.y_test, tiny["y_test"])
    assert m.verified == "shape and range only"


def test_idx_with_official_name_but_wrong_bytes_fails_checksum(tmp_path, datasets_dir):
    shutil.copy(datasets_dir / "mnist" / "t10k-labels-idx1-ubyte.gz", tmp_path)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((10000, 28, 28)), compress=True)
    with pytest.raises(UserError, match="checksum mismatch"):
        data.load_mnist(tmp_path, train=False)


def test_truncated_idx_is_reported(tmp_path, tiny_npz):
    tiny = np.load(tiny_npz)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", tiny["x_test"], compress=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", tiny["y_test"], compress=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated"):
        data.load_mnist(tmp_path, train=False)


def test_tiny_npz_loads(tiny_npz):
    m = data.load_mnist(tiny_npz)
    assert len(m.x_train) == 200 and len(m.x_test) == 50 and m.verified == "shape and range only"


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda p, t: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "not a readable .npz"),
        (lambda p, t: np.savez(p, x_train=t["x_train"], y_train=t["y_train"]), "missing x_test, y_test"),
        (lambda p, t: np.savez(p, **{**t, "x_test": t["x_test"][:, :27]}), r"x_test must be uint8 \(n, 28, 28\)"),
        (lambda p, t: np.savez(p, **{**t, "y_train": t["y_train"] + 10}), "labels 0-9"),
        (lambda p, t: np.savez(p, **{**t, "y_test": t["y_test"][:5]}), "one label per image"),
    ],
    ids=["truncated", "missing-keys", "wrong-shape", "bad-labels", "label-count"],
)
def test_broken_npz_gives_a_clear_error(tiny_npz, break_it, message):
    tiny = dict(np.load(tiny_npz))
    break_it(tiny_npz, tiny)
    with pytest.raises(UserError, match=message):
        data.load_mnist(tiny_npz)


def test_missing_path_is_a_one_line_cli_error(tmp_path):
    result = run_cli("train", "--data", str(tmp_path / "nope.npz"), "--out", str(tmp_path / "run"), check=False)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"Error: {tmp_path / 'nope.npz'}: no such file or folder " \
        "(expected an MNIST .npz or a folder of IDX files)"


def test_validation_split_is_disjoint_and_seeded():
    x = np.arange(100).reshape(100, 1, 1).astype(np.uint8)
    y = np.arange(100) % 10
    xt, _, xv, _ = data.split_validation(x, y, 10, seed=3)
    assert len(xv) == 10 and len(xt) == 90 and not set(xt.ravel()) & set(xv.ravel())
    assert np.array_equal(xv, data.split_validation(x, y, 10, seed=3)[2])
    assert not np.array_equal(xv, data.split_validation(x, y, 10, seed=4)[2])


def _batches(ds):
    return [(x.numpy(), y.numpy()) for x, y in ds]


def _same(a: list, b: list) -> bool:
    return all(np.array_equal(p[0], q[0]) for p, q in zip(a, b))


def test_training_batches_depend_only_on_seed_epoch_and_batch(tiny_npz):
    from digitcnn.augment import Augmentation

    t = np.load(tiny_npz)
    make = lambda seed, epochs: _batches(data.training_batches(  # noqa: E731
        t["x_train"], t["y_train"], 32, seed=seed, epochs=epochs, augmentation=Augmentation()))
    first, again = make(1, range(0, 3)), make(1, range(0, 3))
    assert len(first) == 3 * 6  # 200 // 32 per epoch, the remainder dropped
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first, again))
    resumed = make(1, range(1, 3))  # a run resumed after epoch 1 sees what the straight run saw
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(first[6:], resumed))
    assert not np.array_equal(first[0][1], first[6][1])  # each epoch has its own order
    assert not np.array_equal(first[0][0], make(2, range(0, 1))[0][0])


def test_the_last_settle_epochs_warp_slant_and_width_half_as_much(tiny_npz):
    """Settling is decided by the epoch's place in the whole run, so a resumed run settles when the
    straight one does."""
    from digitcnn.augment import Augmentation

    t = np.load(tiny_npz)
    make = lambda epochs, **aug: _batches(data.training_batches(  # noqa: E731
        t["x_train"], t["y_train"], 32, seed=1, epochs=epochs, augmentation=Augmentation(**aug)))
    run = make(range(0, 3), shear=0.3, stretch=0.3, settle_epochs=1, styles=0)
    strong = make(range(0, 3), shear=0.3, stretch=0.3, settle_epochs=0, styles=0)
    half = make(range(0, 3), shear=0.15, stretch=0.15, settle_epochs=0, styles=0)
    assert _same(run[:12], strong[:12]) and _same(run[12:], half[12:]) and not _same(run[12:], strong[12:])
    assert _same(make(range(2, 3), shear=0.3, stretch=0.3, settle_epochs=1, styles=0), run[12:])


def test_styled_digits_are_trained_on_in_every_epoch_of_a_run_and_its_resumption(mnist_npz):
    """With `styles`, some 7s and 9s are redrawn in other styles (digitcnn/styles.py) once for the
    run: a resumed run trains on the same digits as a straight one."""
    from digitcnn.augment import Augmentation

    with np.load(mnist_npz) as d:
        x, y = d["x_train"][:256], d["y_train"][:256]
    make = lambda epochs, styles: _batches(data.training_batches(  # noqa: E731
        x, y, 64, seed=1, epochs=epochs, augmentation=Augmentation(styles=styles)))
    styled, plain = make(range(0, 3), 0.3), make(range(0, 3), 0.0)
    assert all(not np.array_equal(a[0], b[0]) for a, b in zip(styled, plain))
    assert _same(make(range(1, 3), 0.3), styled[4:])


def test_batches_for_the_warp_on_the_device_are_the_hosts_when_warped_in_shares(tiny_npz):
    """With `warp_on_device` a batch comes as uint8 images, each with its own warp; warped in two halves,
    as two replicas warp their shares, they are the host's warped batch bit for bit."""
    from digitcnn.augment import Augmentation

    t = np.load(tiny_npz)
    make = lambda on_device: list(data.training_batches(  # noqa: E731
        t["x_train"], t["y_train"], 32, seed=1, epochs=range(2), augmentation=Augmentation(), warp_on_device=on_device))
    host, device = make(False), make(True)
    assert len(host) == len(device) == 2 * 6
    for (pixels, labels), (images, device_labels, warps) in zip(host, device):
        assert images.dtype.name == "uint8" and warps.shape == (32, 8)
        halves = [data.warped_pixels(images[i:i + 16], warps[i:i + 16]) for i in (0, 16)]
        np.testing.assert_array_equal(np.concatenate(halves), pixels.numpy())
        np.testing.assert_array_equal(device_labels.numpy(), labels.numpy())
    assert len({tuple(row) for row in device[0][2].numpy()}) == 32  # no two images share a warp


def test_each_epoch_is_a_permutation_of_the_training_images():
    x = np.arange(100, dtype=np.uint8).reshape(100, 1, 1).repeat(28, 1).repeat(28, 2)
    y = np.arange(100) % 10
    for epoch in data.training_batches(x, y, 25, seed=3, epochs=range(2)).batch(4):
        pixels, labels = epoch[0].numpy(), epoch[1].numpy()
        values = np.round(pixels[..., 0, 0, 0].ravel() / data.PIXEL_SCALING["scale"]).astype(int)
        assert sorted(values) == list(range(100)) and np.array_equal(labels.ravel(), values % 10)


def test_evaluation_batches_are_scaled_in_order(tiny_npz):
    t = np.load(tiny_npz)
    chunks = list(data.batches(t["x_test"], 32))
    assert [len(c) for c in chunks] == [32, 18] and chunks[0].dtype == np.float32
    x = np.concatenate(chunks)
    assert x.shape == (50, 28, 28, 1)
    assert np.allclose(x[..., 0], t["x_test"] * data.PIXEL_SCALING["scale"] + data.PIXEL_SCALING["offset"])


def test_download_verifies_the_checksum(tmp_path, mnist_npz):
    import hashlib

    url = mnist_npz.resolve().as_uri()  # a local origin, as no machine here reaches the internet
    sha = hashlib.sha256(mnist_npz.read_bytes()).hexdigest()
    path = data.download(url, sha, cache_dir=str(tmp_path))
    assert path.read_bytes() == mnist_npz.read_bytes() and tmp_path in path.parents
    with pytest.raises(UserError, match="could not download MNIST"):
        data.download(url, "0" * 64, cache_dir=str(tmp_path / "other"))
