"""The fused batch norm computes what Keras' BatchNormalization computes, saves, loads and repeats itself."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from conftest import ROOT
from digitcnn.model import FusedBatchNormalization, build_model

SHAPES = [(16, 6, 6, 5), (8, 7)]  # after a convolution and after a dense layer (8 values a channel)


def _pair(shape: tuple[int, ...]) -> tuple[layers.Layer, layers.Layer]:
    """Keras' layer and the fused one, built alike, with gamma, beta and moving statistics far from their
    initial values (so a swapped or misapplied one shows)."""
    rng = np.random.default_rng(sum(shape))
    channels = shape[-1]
    weights = [rng.uniform(0.5, 2, channels), rng.normal(0, 1, channels), rng.normal(0, 1, channels),
               rng.uniform(0.5, 2, channels)]  # gamma, beta, moving mean, moving variance
    pair = layers.BatchNormalization(), FusedBatchNormalization()
    for layer in pair:
        layer.build(shape)
        layer.set_weights([w.astype(np.float32) for w in weights])
    return pair


def _inputs(shape: tuple[int, ...]) -> tf.Tensor:
    return tf.constant(np.random.default_rng(7).normal(3, 2, shape).astype(np.float32))


def _training_step(layer: layers.Layer, x: tf.Tensor) -> tuple[np.ndarray, list[np.ndarray]]:
    """Training output and the gradients of a non-symmetric loss w.r.t. the input, gamma and beta."""
    weights = tf.constant(np.random.default_rng(3).normal(size=x.shape).astype(np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * weights + y * y)
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return y.numpy(), [g.numpy() for g in grads]


@pytest.mark.parametrize("shape", SHAPES)
def test_training_matches_keras(shape):
    keras_bn, fused = _pair(shape)
    x = _inputs(shape)
    (y_keras, grads_keras), (y_fused, grads_fused) = _training_step(keras_bn, x), _training_step(fused, x)
    np.testing.assert_allclose(y_fused, y_keras, atol=2e-5)
    for g_fused, g_keras in zip(grads_fused, grads_keras):
        np.testing.assert_allclose(g_fused, g_keras, rtol=1e-4, atol=1e-4)
    # the moving statistics: Keras' momentum and biased batch variance (the unbiased one differs by
    # a factor n / (n - 1), 8/7 for the dense shape, far beyond this tolerance)
    np.testing.assert_allclose(fused.moving_mean.numpy(), keras_bn.moving_mean.numpy(), atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance.numpy(), keras_bn.moving_variance.numpy(), rtol=1e-6, atol=1e-6)
    assert not np.allclose(fused.moving_mean.numpy(), _pair(shape)[1].moving_mean.numpy())  # they did move


@pytest.mark.parametrize("shape", SHAPES)
def test_inference_matches_keras_and_leaves_the_statistics(shape):
    keras_bn, fused = _pair(shape)
    before = fused.get_weights()
    x = _inputs(shape)
    np.testing.assert_array_equal(fused(x, training=False).numpy(), keras_bn(x, training=False).numpy())
    for w, b in zip(fused.get_weights(), before):
        np.testing.assert_array_equal(w, b)


def test_lenet_plus_fuses_one_replica_and_synchronizes_several():
    def kinds(synchronized):
        return {(type(l), l.synchronized) for l in build_model("lenet-plus", synchronized).layers
                if isinstance(l, layers.BatchNormalization)}

    assert kinds(False) == {(FusedBatchNormalization, False)}
    assert kinds(True) == {(layers.BatchNormalization, True)}


def test_explain_maps_it_as_a_batch_norm():
    from digitcnn.explain import _keras_step

    assert _keras_step(FusedBatchNormalization()) == _keras_step(layers.BatchNormalization()) == "follow"


def test_saved_model_loads_where_the_project_loads_models(tmp_path):
    """Saved, then loaded in a fresh process by export's loader (which every .keras reader uses) with no
    import of digitcnn.model by the caller: same layer, same answers."""
    model = build_model("lenet-plus")
    x = np.random.default_rng(1).normal(size=(4, 28, 28, 1)).astype(np.float32)
    model(x, training=True)  # moving statistics away from their initial values
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model(x).numpy())
    script = ("import sys, numpy as np; from pathlib import Path; from export.source import Source, load_keras_model\n"
              "d = Path(sys.argv[1]); m = load_keras_model(Source(d / 'model.keras', {}, {}))\n"
              "assert type(m.layers[1]).__name__ == 'FusedBatchNormalization', m.layers[1]\n"
              "np.testing.assert_array_equal(m(np.load(d / 'x.npy')).numpy(), np.load(d / 'y.npy'))\n")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_training_steps_are_deterministic():
    """Two runs of the training loop's own step (two steps each) from the same seed: identical weights."""
    from digitcnn.train import make_train_step

    def weights_after_two_steps() -> list[np.ndarray]:
        keras.utils.set_random_seed(5)
        model = build_model("lenet-plus")
        optimizer = keras.optimizers.AdamW(1e-3)
        step = make_train_step(tf.distribute.get_strategy(), model, optimizer, 0.1, 32)
        batch = tf.random.normal((32, 28, 28, 1)), tf.random.uniform((32,), 0, 10, tf.int32)
        step(batch), step(batch)
        return model.get_weights()

    first, second = weights_after_two_steps(), weights_after_two_steps()
    assert len(first) == len(second)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
