"""MNIST from a file, a folder or the standard download, and the tf.data pipeline that feeds it.

The pixel contract lives here: models see 28x28x1 images, white ink on black, as
`pixel * PIXEL_SCALING["scale"] + PIXEL_SCALING["offset"]`. Training writes PIXEL_SCALING into the
run's metrics.json; export and edge read it from there, never from a copy of this constant.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.errors import UserError

if TYPE_CHECKING:
    import tensorflow as tf

    from digitcnn.augment import Augmentation

PIXEL_SCALING = {"scale": 1.0 / 255.0, "offset": 0.0}
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)

KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
# Checksums of files we know to be good MNIST; any other file is checked by shape and range only.
KNOWN_NPZ_SHA256 = {
    KERAS_MNIST_SHA256: "Keras mnist.npz",
    "da231c08013e217002c4f393e0f38583bf5a62a5ead805d541bdacd45803e00f": "offline mnist.npz (x_train rebuilt losslessly)",
}
KNOWN_IDX_GZ_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@dataclass
class Mnist:
    x_train: np.ndarray | None  # (n, 28, 28) uint8, or None when only the test split was asked for
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: str  # of the npz, or of the IDX files' bytes in x_train, y_train, x_test, y_test order
    verified: str  # what the checksum matched, or "shape and range only"


def load_mnist(path: str | os.PathLike | None = None, train: bool = True) -> Mnist:
    """Load MNIST from `path` (npz or IDX folder), else $DIGITCNN_DATA, else the Keras download.

    `train=False` loads the test split only, so evaluation works from the three IDX test files.
    """
    path = path or os.environ.get("DIGITCNN_DATA") or None
    if path is None:
        path = download()
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or folder (expected an MNIST .npz or a folder of IDX files)")
    if not (path.is_dir() or path.is_file()):  # a pipe or a device would be read forever
        raise UserError(f"{path}: not a regular file or folder (expected an MNIST .npz or a folder of IDX files)")
    data = _load_idx_folder(path, train) if path.is_dir() else _load_npz(path, train)
    for split in ("train", "test") if train else ("test",):
        _check_split(path, split, getattr(data, f"x_{split}"), getattr(data, f"y_{split}"))
    return data


def download(url: str = KERAS_MNIST_URL, sha256: str = KERAS_MNIST_SHA256, cache_dir: str | None = None) -> Path:
    """Fetch mnist.npz the way Keras does (cached in ~/.keras/datasets), refusing a wrong checksum."""
    import keras

    try:
        return Path(keras.utils.get_file("mnist.npz", origin=url, file_hash=sha256, cache_dir=cache_dir))
    except Exception as e:  # network and checksum errors come in many types; all mean the same here
        raise UserError(
            f"could not download MNIST from {url} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "pass --data PATH or set DIGITCNN_DATA to a local mnist.npz or IDX folder"
        ) from None


SPLIT_KEYS = {True: ("x_train", "y_train", "x_test", "y_test"), False: ("x_test", "y_test")}


def _load_npz(path: Path, train: bool) -> Mnist:
    raw = path.read_bytes()
    keys = SPLIT_KEYS[train]
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise UserError(f"{path}: not a Keras-layout MNIST npz (missing {', '.join(missing)})")
            arrays = {k: npz[k] for k in keys}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise UserError(f"{path}: not a readable .npz file ({e})") from None
    digest = hashlib.sha256(raw).hexdigest()
    return _mnist(arrays, path, digest, KNOWN_NPZ_SHA256.get(digest, "shape and range only"))


def _load_idx_folder(folder: Path, train: bool) -> Mnist:
    arrays, hasher, verified = {}, hashlib.sha256(), []
    for key in SPLIT_KEYS[train]:
        name = IDX_NAMES[key]
        candidates = [folder / name, folder / f"{name}.gz"]
        file = next((c for c in candidates if c.is_file()), None)
        if file is None:
            raise UserError(f"{folder}: missing {name}(.gz), needed for the {key.split('_')[1]} split")
        raw = file.read_bytes()
        if file.name in KNOWN_IDX_GZ_MD5:
            if hashlib.md5(raw).hexdigest() != KNOWN_IDX_GZ_MD5[file.name]:
                raise UserError(f"{file}: checksum mismatch (md5 differs from the official MNIST file)")
            verified.append(file.name)
        if file.suffix == ".gz":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as e:
                raise UserError(f"{file}: not a readable gzip file ({e})") from None
        hasher.update(raw)
        arrays[key] = _parse_idx(file, raw)
    checked = ("official md5 of " + ", ".join(verified)) if verified else "shape and range only"
    return _mnist(arrays, folder, hasher.hexdigest(), checked)


def _mnist(arrays: dict, source: Path, sha256: str, verified: str) -> Mnist:
    return Mnist(x_train=arrays.get("x_train"), y_train=arrays.get("y_train"), x_test=arrays["x_test"],
                 y_test=arrays["y_test"], source=str(source), sha256=sha256, verified=verified)


def _parse_idx(file: Path, raw: bytes) -> np.ndarray:
    """IDX: 2 zero bytes, a type byte (0x08 = uint8), a dim count, big-endian int32 dims, data."""
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08 or raw[3] not in (1, 3):
        raise UserError(f"{file}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int(d) for d in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape)):
        raise UserError(f"{file}: truncated or padded (header says {shape}, body has {len(body)} bytes)")
    return np.frombuffer(body, np.uint8).reshape(shape)


def _check_split(source: Path, split: str, x: np.ndarray, y: np.ndarray) -> None:
    if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
        raise UserError(f"{source}: x_{split} must be uint8 (n, 28, 28), got {x.dtype} {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise UserError(f"{source}: y_{split} must have one label per image, got {y.shape} for {len(x)} images")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES)):
        raise UserError(f"{source}: y_{split} must hold integer labels 0-9")
    if len(x) == 0:
        raise UserError(f"{source}: the {split} split is empty")


def split_validation(
    x: np.ndarray, y: np.ndarray, n_val: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out `n_val` training images, chosen by a seeded permutation, for model selection."""
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def run_split(x: np.ndarray, y: np.ndarray, *, val_size: int, seed: int, subset: int | None = None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A run's training and validation images, as `train` split them from MNIST's training set: the
    first `subset` images (all if None), `val_size` of them (at most a tenth) held out by `seed`.
    Export fits the model's confidence on the same held-out images (edge/confidence.py)."""
    if subset:
        x, y = x[:subset], y[:subset]
    return split_validation(x, y, max(min(val_size, len(x) // 10), 1), seed)


def scale_pixels(images):
    """Float 0-255 pixels -> the values the model was trained on (numpy arrays or tf tensors)."""
    return images * PIXEL_SCALING["scale"] + PIXEL_SCALING["offset"]


def training_batches(x: np.ndarray, y: np.ndarray, batch_size: int, *, seed: int, epochs: range,
                     augmentation: "Augmentation | None" = None, warp_on_device: bool = False):
    """Every training batch of `epochs`, in order: one dataset, so one iterator, for the whole run.

    Epoch e is a seeded permutation of the images (the remainder dropped), and batch b of it is
    warped with random numbers keyed by (seed, e, b): the data of every step is a pure function of
    (seed, epoch, batch), so a run resumed at epoch k (`epochs=range(k, n)`) sees exactly what an
    uninterrupted one would. A new distributed iterator per epoch would tear the previous one down
    while its prefetch threads are live, which can hang for good (issue 11); one iterator can't.

    Each element is (pixels, labels). With `warp_on_device` (and an augmentation) it is (uint8 images,
    labels, warps) instead, each image with its own row of `augment.warp_transforms`, for the train
    step to finish with `warped_pixels` on whichever replica the image lands: the same numbers,
    whichever device resamples them and however the strategy splits the batch.
    """
    import tensorflow as tf

    from digitcnn.augment import warp_transforms
    from digitcnn.distribute import usable_cores
    from digitcnn.styles import restyle

    if augmentation is not None and augmentation.styles:  # some 1s, 4s, 7s and 9s in other people's styles
        x = restyle(x, y, augmentation.styles, seed, augmentation.style_names)
    images, labels = tf.constant(x[..., None]), tf.constant(y.astype(np.int32))
    steps = len(x) // batch_size

    def epoch_batches(epoch):
        order = tf.random.experimental.stateless_shuffle(tf.range(len(x)), seed=[seed, epoch], alg="philox")
        rows = tf.reshape(order[: steps * batch_size], (steps, batch_size))
        return tf.data.Dataset.from_tensor_slices((tf.fill([steps], epoch), tf.range(steps, dtype=tf.int64), rows))

    def prepare(epoch, batch, rows):
        digits, answers = tf.gather(images, rows), tf.gather(labels, rows)
        if augmentation is None:
            return scale_pixels(tf.cast(digits, tf.float32)), answers
        warps = warp_transforms(batch_size, tf.stack([tf.constant(seed, tf.int64), epoch * 1_000_000 + batch]),
                                augmentation, settling=epoch >= epochs.stop - augmentation.settle_epochs)
        return (digits, answers, warps) if warp_on_device else (warped_pixels(digits, warps), answers)

    ds = tf.data.Dataset.range(epochs.start, epochs.stop).flat_map(epoch_batches)
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    # tf.data's own threads, as many as the cores this process may use (see distribute.size_thread_pools).
    options.threading.private_threadpool_size = usable_cores()
    # Every worker builds the same batches and keeps its share of each (no input files to split).
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


def warped_pixels(images: "tf.Tensor", warps: "tf.Tensor") -> "tf.Tensor":
    """uint8 images (n, 28, 28, 1) -> the model's pixels, each image warped by its row of `warps`: the
    last stage of the training data, in tf.data on the host or in the train step on a replica's device."""
    import tensorflow as tf

    from digitcnn.augment import warp

    return warp(scale_pixels(tf.cast(images, tf.float32)), warps)


def batches(x: np.ndarray, batch_size: int):
    """Scaled float32 images, `batch_size` at a time, in order: evaluation needs no tf.data."""
    for i in range(0, len(x), batch_size):
        yield scale_pixels(x[i : i + batch_size, ..., None].astype(np.float32))


USPS_SHA256 = "38329e4546272a0537b1c21df36df9e52c14b08759e76e29a2dcc426c06ae9e0"
"""The shared datasets' usps.npz (16x16 uint8, white on black, digits filling the box)."""
USPS_DEFAULT = Path("usps") / "usps.npz"
"""Where training looks for USPS under $DIGITCNN_DATASETS when no `--usps PATH` is given."""


def find_usps(path: str | os.PathLike | None) -> Path | None:
    """The usps.npz to train on: `path` as given (a missing one is refused when loaded), else the shared
    datasets' copy if $DIGITCNN_DATASETS holds one, else None. It is never downloaded: there is no
    checksummed source to fetch it from (docs/train.md, Data), so a fresh machine trains on MNIST alone."""
    if path is not None:
        return Path(path)
    shared = os.environ.get("DIGITCNN_DATASETS")
    found = Path(shared) / USPS_DEFAULT if shared else None
    return found if found is not None and found.is_file() else None


def with_usps(x: np.ndarray, y: np.ndarray, path: Path | None, keep: float = 1.0
              ) -> tuple[np.ndarray, np.ndarray, dict | None]:
    """MNIST's training digits `x`, `y` followed by the first `keep` share of USPS's training split (all
    of it for a full run; as much of it as of MNIST for a `--subset` run), and the record of what was
    added for metrics.json (None, with `x` and `y` as they were, when `path` is None)."""
    if path is None:
        return x, y, None
    xu, yu = load_usps_train(path)
    n = max(1, round(keep * len(xu)))
    record = {"name": "usps-train", "sha256": USPS_SHA256, "images": n}
    return np.concatenate([x, xu[:n]]), np.concatenate([y, yu[:n].astype(y.dtype)]), record


def load_usps_train(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """USPS's training split (7,291 digits by other writers than MNIST's) framed like MNIST's digits:
    longer side scaled to 20 px, centred by mass in 28x28, by the same `frame_digit` that frames a
    photo, so the network sees USPS as it sees MNIST. The test split (`x`, `y`) is never read here:
    it stays for evaluation. A file whose checksum is not the known usps.npz is refused."""
    from edge.preprocess import NoDigit, frame_digit

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file (expected usps.npz)")
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != USPS_SHA256:
        raise UserError(f"{path}: not the known usps.npz (sha256 differs)")
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        x, y = npz["x_train"], npz["y_train"].astype(np.int64)
    framed, keep = [], []
    for digit in x:
        try:
            framed.append(frame_digit(digit))
            keep.append(True)
        except NoDigit:  # a blank scan: nothing to learn from
            keep.append(False)
    return np.stack(framed), y[np.array(keep)]
