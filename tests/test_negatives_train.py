"""Outlier exposure (digitcnn/negatives.py): the generated non-digits, their uniform target in the
training step, and a run that trains on them. A killed run that resumes exactly with negatives on
(the default) is tests/test_train.py's resume test."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from conftest import run_cli
from digitcnn import negatives as neg
from digitcnn.data import run_split
from edge.preprocess.frame import BOX, SIZE
from negatives import FAMILIES as DEV_FAMILIES
from negatives import SYMBOLS

DIGIT_LIKE = "0123456789OoQDIlijJLTZzSsbGбΓBβgqPpaЗзч"
"""Letters people cannot tell from a digit (O 0, l 1, Z 2, S 5, b 6, B 8, g 9 ...): never negatives."""


@pytest.fixture(scope="module")
def digits(mnist_npz):
    with np.load(mnist_npz) as d:
        return d["x_train"][:2000], d["y_train"][:2000]


def test_generator_is_deterministic_and_frames_like_mnist(digits):
    x, y = digits
    a = neg.training_negatives(60, 3, x, y)
    assert a.shape == (60, SIZE, SIZE) and a.dtype == np.uint8
    assert np.array_equal(a, neg.training_negatives(60, 3, x, y))
    assert not np.array_equal(a, neg.training_negatives(60, 4, x, y))
    for image in a:
        rows, cols = np.nonzero(image.any(axis=1))[0], np.nonzero(image.any(axis=0))[0]
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= BOX + 2  # the box, softened by a pixel
        mass = image.astype(np.float64)
        cy = (mass.sum(axis=1) * np.arange(SIZE)).sum() / mass.sum()
        cx = (mass.sum(axis=0) * np.arange(SIZE)).sum() / mass.sum()
        assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    assert len({image.tobytes() for image in a}) == len(a)


@pytest.mark.parametrize("family", neg.FAMILIES)
def test_every_family_draws_ink(family, digits):
    x, y = digits
    rng = np.random.default_rng(0)
    for _ in range(10):
        image = neg.negative(family, rng, x, np.flatnonzero(y != 1))
        assert image.shape == (SIZE, SIZE) and image.max() == 255


def test_no_letter_that_reads_as_a_digit():
    assert not set(DIGIT_LIKE) & (set(neg.FONT_LETTERS) | set(neg.HAND_LETTERS))


def test_held_out_families_are_never_drawn_by_the_training_generator():
    assert set(neg.DEV_TRAINED) | set(neg.DEV_HELD_OUT) <= set(DEV_FAMILIES)
    assert not set(neg.DEV_TRAINED) & set(neg.DEV_HELD_OUT)
    assert not set(SYMBOLS) & set(neg.FONT_LETTERS)  # the held-out symbols' characters
    assert not set(neg.FAMILIES) & set(neg.DEV_HELD_OUT)
    with pytest.raises(ValueError):
        neg.negative("symbol", np.random.default_rng(0))


def test_parts_of_digits_come_from_the_given_digits_only(digits):
    """A part of the given digits' ink, never another image's: all-black digits but one give parts of that one."""
    x, y = digits
    only = np.zeros_like(x[:50])
    only[7] = x[0]
    part = neg.negative("digit_part", np.random.default_rng(1), only, np.array([7]))
    assert part.max() == 255
    with pytest.raises(Exception):
        neg.negative("digit_part", np.random.default_rng(1), np.zeros_like(only), np.array([7]))


def test_with_negatives_appends_the_share_labelled_minus_one(digits):
    x, y = digits
    xs, ys = neg.with_negatives(x, y, 0.2, seed=1)
    assert len(xs) == len(ys) == len(x) + 500 and ys.dtype == np.int64
    assert np.array_equal(xs[:len(x)], x) and np.array_equal(ys[:len(x)], y) and (ys[len(x):] == -1).all()
    assert neg.with_negatives(x, y, 0.0, seed=1)[0].shape == x.shape


def test_styles_leave_negatives_alone_and_the_warps_apply_to_them(digits):
    from digitcnn.augment import Augmentation
    from digitcnn.data import scale_pixels, training_batches
    from digitcnn.styles import restyle

    x, y = digits
    xs, ys = neg.with_negatives(x[:300], y[:300], 0.5, seed=1)
    assert np.array_equal(restyle(xs, ys, 1.0, seed=1)[ys < 0], xs[ys < 0])
    batches = training_batches(xs, ys, 600, seed=1, epochs=range(1), augmentation=Augmentation())
    images, labels = (t.numpy() for t in next(iter(batches)))
    row = int(np.flatnonzero(labels < 0)[0])
    plain = scale_pixels(xs[ys < 0].astype(np.float32))
    assert not any(np.allclose(images[row, ..., 0], p) for p in plain)  # warped, like every digit
    assert (labels < 0).sum() == 300  # the whole epoch in one batch: every negative, once


def test_a_negatives_loss_is_the_cross_entropy_to_uniform():
    """The step's loss on a digit and a negative, recomputed by hand: label smoothing on the digit,
    the uniform target on the negative; only the digit is counted for accuracy."""
    import keras
    import tensorflow as tf

    from digitcnn.train import make_train_step

    strategy = tf.distribute.get_strategy()
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    optimizer = keras.optimizers.SGD(0.0)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((2, 28, 28, 1)), tf.float32)
    labels = tf.constant([3, -1], tf.int32)
    logits = model(images).numpy().astype(np.float64)
    log_p = logits - logits.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    digit_target = np.full(10, 0.01) + 0.9 * np.eye(10)[3]
    expected = (-(digit_target * log_p[0]).sum() - log_p[1].mean()) / 2
    loss, correct, labelled = make_train_step(strategy, model, optimizer, 0.1, 2)((images, labels))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(labelled) == 1 and float(correct) == float(np.argmax(logits[0]) == 3)


@pytest.mark.slow
def test_a_run_with_negatives_records_them_and_keeps_them_in_its_identity(tmp_path, mnist_npz):
    out = tmp_path / "run"
    args = ("train", "--model", "lenet5", "--subset", "1000", "--epochs", "1", "--no-usps", "--data", str(mnist_npz),
            "--out", str(out))
    run_cli(*args, "--negatives", "0.2")
    m = json.loads((out / "metrics.json").read_text())
    with np.load(mnist_npz) as d:
        x, y = d["x_train"][:1000], d["y_train"][:1000]
    x_train, y_train, _, _ = run_split(x, y, val_size=5000, seed=1)
    appended = neg.with_negatives(x_train, y_train, 0.2, seed=1)[0][len(x_train):]
    assert m["data"]["train"] == 900 and m["training"]["negatives"] == {
        "share": 0.2, "images": 225, "sha256": hashlib.sha256(appended.tobytes()).hexdigest(),
        "families": list(neg.FAMILIES), "held_out": list(neg.DEV_HELD_OUT)}
    assert 0 <= m["history"][0]["accuracy"] <= 1
    refused = run_cli(*args, "--negatives", "0", check=False)
    assert refused.returncode == 1 and "negatives" in refused.stderr and "Traceback" not in refused.stderr
