"""Shared fixtures: where MNIST is, a tiny synthetic MNIST, and one small trained run for later stages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"


def messages(stderr: str) -> list[str]:
    """What a command said on stderr, without LiteRT's own start-up line."""
    return [line for line in stderr.splitlines() if not line.startswith("INFO: ")]


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, check: bool = True,
            cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run `python cli.py ARGS` in a subprocess, as a user would, and return its result."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    result = subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True,
                            env=full_env, timeout=timeout, cwd=cwd)
    if check and result.returncode != 0:
        raise AssertionError(f"cli.py {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


# Run as `python -c BLOCK_TENSORFLOW -m MODULE ARGS` or `... SCRIPT ARGS`: TensorFlow and Keras seem not installed.
BLOCK_TENSORFLOW = """
import sys, runpy
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras'):
            raise ModuleNotFoundError('refused import of ' + name, name=name)
sys.meta_path.insert(0, Refuse())
if sys.argv[1] == '-m':
    sys.argv = sys.argv[2:]
    runpy.run_module(sys.argv[0], run_name='__main__')
else:
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name='__main__')
"""


def _missing_data(message: str) -> None:
    """Skip a test that needs data this machine lacks; under CI (`CI=true`) fail it, so that a green
    run never means that every model test was skipped."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI must run the tests that need it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    path = Path(os.environ.get("DIGITCNN_DATASETS", SHARED))
    if not (path / "mnist").is_dir():
        _missing_data(f"shared datasets not found at {path} (set DIGITCNN_DATASETS)")
    return path


@pytest.fixture(scope="session")
def mnist_npz(datasets_dir: Path) -> Path:
    path = Path(os.environ.get("DIGITCNN_DATA", datasets_dir / "mnist" / "mnist.npz"))
    if not path.exists():
        _missing_data(f"MNIST not found at {path} (set DIGITCNN_DATA)")
    return path


@pytest.fixture(scope="session")
def mnist_pngs(mnist_npz: Path, tmp_path_factory) -> list[tuple[Path, int]]:
    """The first five MNIST test digits as PNG files, with their labels."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("mnist_pngs")
    with np.load(mnist_npz) as d:
        x, y = d["x_test"][:5], d["y_test"][:5]
    for i, image in enumerate(x):
        Image.fromarray(image).save(folder / f"{i}.png")
    return [(folder / f"{i}.png", int(label)) for i, label in enumerate(y)]


@pytest.fixture
def tiny_npz(tmp_path: Path) -> Path:
    """A 200/50-image MNIST-layout npz of random blobs: enough to exercise the loader and loop."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=rng.integers(0, 256, (200, 28, 28), dtype=np.uint8),
             y_train=rng.integers(0, 10, 200, dtype=np.uint8),
             x_test=rng.integers(0, 256, (50, 28, 28), dtype=np.uint8),
             y_test=rng.integers(0, 10, 50, dtype=np.uint8))
    return path


@pytest.fixture(scope="session")
def small_run(tmp_path_factory, mnist_npz: Path) -> Path:
    """A lenet5 run trained for 2 epochs on 6,000 images (about 93% on MNIST): input for export and edge.
    Taught MNIST alone (no USPS, styles or shapes: test_train.py and test_negatives_train.py train with
    those), so that it misreads a continental hand's crossed 7s, which Teach's tests then teach it."""
    out = tmp_path_factory.mktemp("runs") / "small"
    run_cli("train", "--model", "lenet5", "--subset", "6000", "--epochs", "2", "--no-usps", "--styles", "0",
            "--negatives", "0", "--data", str(mnist_npz), "--out", str(out))
    return out


@pytest.fixture(scope="session")
def int8_model(small_run: Path) -> Path:
    """The small run exported as int8 (lenient --max-drop: the model is weak on purpose)."""
    run_cli("export", str(small_run), "--quantize", "int8", "--max-drop", "5")
    return small_run / "model_int8.tflite"


def with_rule(model: Path, out: Path, rule: dict | None) -> Path:
    """A copy of `model` whose metadata carries the "no digit" rule `rule` (edge/confidence.py), or none
    (None: as models exported before the rule existed)."""
    from edge import metadata as md

    meta = {k: v for k, v in md.load_metadata(model).items() if k != "confidence"}
    if rule is not None:
        meta["confidence"] = {"images": 1, **rule}
    out.write_bytes(md.embed_metadata(model.read_bytes(), meta))
    return out


UNSURE = {"temperature": 3.0, "threshold": 0.6}
"""A rule that withholds every digit: at T = 3 no calibrated probability passes 0.47 (the other nine
classes keep at least (1/512)^(1/3) of the top one's weight each)."""


@pytest.fixture(scope="session")
def unsure_model(int8_model: Path, tmp_path_factory) -> Path:
    """The int8 model with the UNSURE rule in its metadata: the same flatbuffer, every answer "no digit"."""
    return with_rule(int8_model, tmp_path_factory.mktemp("unsure") / "unsure.tflite", UNSURE)


@pytest.fixture(scope="session")
def featureless_model(small_run: Path, int8_model: Path, tmp_path_factory) -> Path:
    """The small run exported as before teaching existed: one output, `probabilities`, and metadata
    without `features`, `confidence` or `stages` (float32, converted the way export then did)."""
    import keras
    import tensorflow as tf

    from edge import metadata as md

    model = keras.saving.load_model(small_run / "model.keras", compile=False)
    saved = tmp_path_factory.mktemp("saved_model")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda image: {"probabilities": keras.ops.softmax(model(image))},
                         input_signature=[tf.TensorSpec([1, 28, 28, 1], tf.float32, name="image")])
    archive.write_out(str(saved), verbose=False)
    flatbuffer = tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()
    meta = {k: v for k, v in md.load_metadata(int8_model).items() if k not in ("features", "confidence", "stages")}
    float_spec = {"dtype": "float32", "scale": None, "zero_point": None}
    meta.update(variant="float32", input={**meta["input"], **float_spec}, output={**meta["output"], **float_spec},
                sha256=md.sha256(flatbuffer))
    path = tmp_path_factory.mktemp("featureless") / "model_float32.tflite"
    path.write_bytes(md.embed_metadata(flatbuffer, meta))
    return path


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium, one per test module (tests/browser.py); where it cannot run, a test
    that needs it fails under CI and is skipped by its module's mark elsewhere."""
    from browser import chromium, missing

    reason = missing()
    if reason:
        pytest.fail(f"the browser tests must run here (CI or DIGITCNN_REQUIRE_BROWSER=1), but {reason}")
    with chromium() as b:
        yield b

