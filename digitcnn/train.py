"""The training loop: one custom tf.distribute loop for every strategy, read top to bottom.

Keras 3 `model.fit` fails under MultiWorkerMirroredStrategy (keras-team/keras#20585), so the loop
is written out with `strategy.run`. Rerunning the same command in the same run directory resumes
from the last epoch checkpoint and ends exactly where an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.atomic import atomic_path, write_json
from edge.errors import UserError


@dataclass
class TrainConfig:
    model: str = "lenet-plus"
    epochs: int = 19
    batch_size: int = 128  # per replica
    lr: float = 3e-3  # peak learning rate for a global batch of 128, see distribute.py
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    val_size: int = 5000
    seed: int = 1  # fixed; the recipe is judged on the mean of seeds 1-3 (bench/seeds.py, docs/train.md)
    # Share of each batch that is generated non-digits, target uniform (digitcnn/negatives.py). None:
    # NEGATIVES with USPS, none without: beside MNIST's digits alone they taught seed 1 that every
    # blurred digit is not a digit (docs/train.md#shapes-that-are-not-digits).
    negatives: float | None = None
    subset: int | None = None  # train on the first N training images only
    augmentation: dict = field(default_factory=lambda: dataclasses.asdict(_default_augmentation()))
    strategy: str = "auto"
    devices: int = 1
    mixed_precision: bool = False
    # Where the warp resamples: "host" (tf.data) or "device" (the train step, on each replica); "auto":
    # the device on GPUs and TPUs (distribute.warps_on_device). Not in RUN_IDENTITY: the weights are the
    # same either way (bit-identical on CPUs, tests/test_train.py), as with --strategy.
    augment_on: str = "auto"
    profile: bool = False  # write a TensorBoard trace of a few steps (PROFILE_STEPS) to run_dir/tensorboard
    data: str | None = None
    usps: bool = True  # USPS's training split joins MNIST's when its file is found (data.find_usps)
    usps_path: str | None = None  # default: $DIGITCNN_DATASETS/usps/usps.npz
    out: str | None = None  # the run directory; default runs/<model>

    def run_dir(self) -> Path:
        return Path(self.out or f"runs/{self.model}")


NEGATIVES = 0.2
"""The default share of shapes that are not digits, when USPS's training split joins MNIST's."""

# Settings that change what a run computes: a rerun in the same directory must repeat them.
RUN_IDENTITY = ("model", "epochs", "batch_size", "lr", "weight_decay", "warmup_epochs",
                "label_smoothing", "val_size", "seed", "subset", "augmentation", "mixed_precision", "usps",
                "negatives")


# The steps of this process's first epoch that `--profile` traces: past the first step's tracing and
# compilation, few enough that the trace stays small and the run is hardly slowed.
PROFILE_STEPS = range(3, 8)


def _default_augmentation():
    from digitcnn.augment import Augmentation

    return Augmentation()


def train(cfg: TrainConfig, log=print, on_epoch_end=None) -> dict:
    """Train (or resume) the run in cfg.run_dir() and return its metrics.

    `on_epoch_end(epoch, model)`, if given, is called after each epoch's checkpoint (benchmarks).
    """
    import keras
    import tensorflow as tf

    from digitcnn import data as data_lib
    from digitcnn.augment import Augmentation
    from digitcnn.distribute import choose_strategy, is_chief, scaled_lr, warps_on_device
    from digitcnn.model import build_model
    from digitcnn.negatives import record, with_negatives

    started = time.time()
    strategy = choose_strategy(cfg.strategy, cfg.devices)  # first: it may configure devices
    chief = is_chief(strategy)
    run_dir = cfg.run_dir()
    if cfg.epochs < 1 or cfg.batch_size < 1 or (cfg.subset is not None and cfg.subset < 2):
        raise UserError("--epochs and --batch-size must be at least 1, --subset at least 2")
    usps_path = data_lib.find_usps(cfg.usps_path) if cfg.usps else None
    if cfg.usps and usps_path is None and chief:
        log(f"USPS not found (no $DIGITCNN_DATASETS/{data_lib.USPS_DEFAULT}): training on MNIST alone"
            f"{', without shapes taught as unsure' if cfg.negatives is None else ''}; "
            "add USPS's training split with --usps PATH")
    augment_on = "device" if warps_on_device(strategy, cfg.augment_on) else "host"
    negatives = cfg.negatives if cfg.negatives is not None else (NEGATIVES if usps_path else 0.0)
    # The run records what it trained on, and where it warped.
    cfg = dataclasses.replace(cfg, usps=usps_path is not None, augment_on=augment_on, negatives=negatives)
    if not 0 <= cfg.negatives < 1:
        raise UserError("--negatives must be a share in [0, 1)")
    _check_same_run(run_dir, cfg, write=chief)

    mnist = data_lib.load_mnist(cfg.data)
    x_train, y_train, x_val, y_val = data_lib.run_split(mnist.x_train, mnist.y_train, val_size=cfg.val_size,
                                                        seed=cfg.seed, subset=cfg.subset)
    trained_on = [{"name": "mnist", "sha256": mnist.sha256, "images": len(x_train)}]
    x_train, y_train, usps = data_lib.with_usps(x_train, y_train, usps_path,
                                                keep=min(1.0, (cfg.subset or len(mnist.x_train)) / len(mnist.x_train)))
    trained_on += [usps] if usps else []
    digits = len(x_train)
    x_train, y_train = with_negatives(x_train, y_train, cfg.negatives, cfg.seed)  # labelled -1

    keras.utils.set_random_seed(cfg.seed)
    tf.config.experimental.enable_op_determinism()
    if cfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")

    replicas = strategy.num_replicas_in_sync
    global_batch = cfg.batch_size * replicas
    steps_per_epoch = len(x_train) // global_batch
    if steps_per_epoch == 0:
        raise UserError(f"{len(x_train)} training images are fewer than one global batch of {global_batch}")
    total_steps = steps_per_epoch * cfg.epochs
    warmup = min(int(cfg.warmup_epochs * steps_per_epoch), total_steps // 2)
    peak_lr = scaled_lr(cfg.lr, global_batch)
    augmentation = Augmentation(**cfg.augmentation)

    with strategy.scope():
        model = build_model(cfg.model, synchronized=replicas > 1)
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0, total_steps - warmup, warmup_target=peak_lr, warmup_steps=warmup
        )
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=cfg.weight_decay)
        if cfg.mixed_precision:
            optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False)
        # Dropout's random state is not among the model's checkpointed weights; save it too.
        rng_state = [v for v in model.variables if "seed_generator" in v.path]
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, epoch=epoch_var, rng=rng_state)
    ckpt_dir = run_dir / "checkpoints"
    # Every worker must save (saving is collective); only the chief's copy is kept.
    write_dir = ckpt_dir if chief else run_dir / f".worker-{strategy.cluster_resolver.task_id}-checkpoints"
    manager = tf.train.CheckpointManager(checkpoint, str(write_dir), max_to_keep=2)
    latest = tf.train.latest_checkpoint(str(ckpt_dir))
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        log(f"resuming {run_dir} from epoch {int(epoch_var.numpy())} of {cfg.epochs}")
    start_epoch = int(epoch_var.numpy())
    history = _read_history(run_dir)[:start_epoch]

    train_step = make_train_step(strategy, model, optimizer, cfg.label_smoothing, global_batch)

    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard")) if chief else None
    # One iterator for the whole run (see data.training_batches), read exactly to its end.
    batches = input_iterator(strategy, data_lib.training_batches(
        x_train, y_train, global_batch, seed=cfg.seed, epochs=range(start_epoch, cfg.epochs),
        augmentation=augmentation, warp_on_device=cfg.augment_on == "device"))
    for epoch in range(start_epoch, cfg.epochs):
        bar = progress_bar(steps_per_epoch, show=chief)
        t0, loss_sum, correct_sum, digits_sum = time.perf_counter(), 0.0, 0.0, 0.0
        for step in range(steps_per_epoch):
            profiling = cfg.profile and chief and epoch == start_epoch and step in PROFILE_STEPS
            if profiling and step == PROFILE_STEPS.start:
                tf.profiler.experimental.start(str(run_dir / "tensorboard"))
            loss, correct, labelled = train_step(next(batches))
            if profiling and (step + 1 == PROFILE_STEPS.stop or step + 1 == steps_per_epoch):
                float(loss)  # the trace ends when the last traced step has
                tf.profiler.experimental.stop()
            # tensors: no wait per step
            loss_sum, correct_sum, digits_sum = loss_sum + loss, correct_sum + correct, digits_sum + labelled
            if bar and (step % 10 == 9 or step + 1 == steps_per_epoch):
                seen = (step + 1) * global_batch
                bar.update(step + 1, [("loss", float(loss_sum) / (step + 1)),
                                      ("acc", float(correct_sum) / max(float(digits_sum), 1)),
                                      ("img/s", seen / (time.perf_counter() - t0))])
        loss_sum, correct_sum, digits_sum = float(loss_sum), float(correct_sum), float(digits_sum)
        seconds = time.perf_counter() - t0
        val_loss, val_acc = evaluate_logits(model, x_val, y_val)
        wall = time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": loss_sum / steps_per_epoch,
                        "accuracy": correct_sum / digits_sum,  # of the digits: negatives have no right answer
                        "val_loss": val_loss, "val_accuracy": val_acc, "seconds": seconds, "wall": wall,
                        "images_per_second": steps_per_epoch * global_batch / seconds})
        if chief:
            h = history[-1]
            log(f"epoch {epoch + 1}/{cfg.epochs}  loss {h['loss']:.4f}  acc {h['accuracy']:.4f}  "
                f"val_loss {val_loss:.4f}  val_acc {val_acc:.4f}  {h['images_per_second']:,.0f} img/s  {wall:.0f} s")
            with writer.as_default(step=epoch + 1):
                for key in ("loss", "accuracy", "val_loss", "val_accuracy", "images_per_second"):
                    tf.summary.scalar(key, history[-1][key])
            write_json(run_dir / "history.json", history)
        epoch_var.assign(epoch + 1)
        manager.save(checkpoint_number=epoch + 1)
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
        if on_epoch_end:
            on_epoch_end(epoch + 1, model)
    # The run read exactly every batch, so the pipeline has stopped and the iterator is safe to drop.
    assert not batches.get_next_as_optional().has_value(), "training data left unread"

    _, test_acc = evaluate_logits(model, mnist.x_test, mnist.y_test)
    train_seconds = sum(h["seconds"] for h in history)
    metrics = {
        "test_accuracy": test_acc,
        "val_accuracy": history[-1]["val_accuracy"],
        "history": history,
        # This process's time plus the epochs an interrupted earlier process completed.
        "wall_seconds": time.time() - started + sum(h["wall"] for h in history[:start_epoch]),
        "train_seconds": train_seconds,
        "images_per_second": steps_per_epoch * global_batch * len(history) / train_seconds,
        "strategy": type(strategy).__name__,
        "replicas": replicas,
        "global_batch": global_batch,
        "peak_lr": peak_lr,
        "seed": cfg.seed,
        "model": cfg.model,
        "params": model.count_params(),
        "weights_sha256": weights_fingerprint(model),
        "pixel_scaling": data_lib.PIXEL_SCALING,
        "data": {"source": mnist.source, "sha256": mnist.sha256, "verified": mnist.verified,
                 "train": trained_on[0]["images"], "val": len(x_val), "test": len(mnist.x_test)},
        "training": {"data": trained_on, "styles": augmentation.styles_record(),
                     "negatives": record(cfg.negatives, x_train[digits:])},
        "config": dataclasses.asdict(cfg),
        "versions": {"python": platform.python_version(), "tensorflow": tf.__version__,
                     "keras": keras.__version__, "numpy": np.__version__},
        "run_dir": str(run_dir),
    }
    if chief:
        with atomic_path(run_dir / "model.keras") as tmp:
            model.save(tmp)
        from digitcnn.curves import plot_curves

        plot_curves(history, run_dir / "curves.png")
        write_json(run_dir / "metrics.json", metrics)
    return metrics


def input_iterator(strategy, dataset):
    """An iterator over `dataset` that feeds `strategy`'s replicas.

    Training on the CPU alone needs no distribution: tf.distribute's iterator there cost about 30,000
    minor page faults and 95 ms of kernel time per step of lenet-plus on 2 cores (each step's buffers
    mapped afresh), where a plain iterator costs 30 faults and 3 ms (issue 27). Any other device (a
    GPU) gets tf.distribute's iterator, which prefetches each batch onto it while the last one trains.
    """
    import tensorflow as tf

    if isinstance(strategy, tf.distribute.OneDeviceStrategy) and "CPU" in strategy.extended.worker_devices[0]:
        return iter(dataset)
    return iter(strategy.experimental_distribute_dataset(dataset))


def make_train_step(strategy, model, optimizer, label_smoothing: float, global_batch: int):
    """One optimizer step on a distributed batch -> (mean loss, correct answers, digits), summed over replicas.

    A label -1 marks a negative (digitcnn/negatives.py): its target is the uniform distribution over
    the ten digits (outlier exposure), which label smoothing leaves uniform; it has no right answer,
    so only the digits are counted for accuracy. A batch of three, (uint8 images, labels, warps), is
    warped first, by each replica on its own device (`train --augment-on device`, data.training_batches)."""
    import keras
    import tensorflow as tf

    from digitcnn.data import warped_pixels

    loss_fn = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=label_smoothing, reduction=None)

    def step(images, labels, warps=None):
        if warps is not None:
            images = warped_pixels(images, warps)
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)
            targets = tf.where(labels[:, None] < 0, 1.0 / 10, tf.one_hot(labels, 10))
            per_example = loss_fn(targets, logits)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, 1, output_type=tf.int32) == labels, tf.float32))
        return loss, correct, tf.reduce_sum(tf.cast(labels >= 0, tf.float32))

    @tf.function
    def train_step(batch):
        sum_ = tf.distribute.ReduceOp.SUM
        return tuple(strategy.reduce(sum_, v, axis=None) for v in strategy.run(step, args=batch))

    return train_step


def progress_bar(steps: int, show: bool):
    """Keras' live bar on a terminal; none in a log file (CI, nohup), where each epoch's line is enough.

    Keras' Progbar treats any POSIX stdout as a live display, so a log would fill with thousands of
    carriage-return updates.
    """
    import keras

    if not (show and sys.stdout.isatty()):
        return None
    return keras.utils.Progbar(steps, stateful_metrics=["loss", "acc", "img/s"])


def weights_fingerprint(model) -> str:
    """sha256 over every weight: equal fingerprints mean bit-identical models (resume, workers)."""
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def evaluate_logits(model, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of `model` on uint8 images, batched, without augmentation."""
    import keras

    from digitcnn.data import batches

    logits = np.concatenate([keras.ops.convert_to_numpy(model(images, training=False))
                             for images in batches(x, batch_size)]).astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean()), float((log_probs.argmax(axis=1) == y).mean())


def _check_same_run(run_dir: Path, cfg: TrainConfig, write: bool) -> None:
    """Refuse to resume a run directory made with other settings, rather than mixing two runs."""
    # As JSON has it (tuples as lists), to compare with the saved settings.
    wanted = json.loads(json.dumps({k: v for k, v in dataclasses.asdict(cfg).items() if k in RUN_IDENTITY}))
    path = run_dir / "config.json"
    try:
        text = _run_file(path)
        saved = None if text is None else json.loads(text)
    except (json.JSONDecodeError, OSError) as e:
        raise UserError(f"{path}: unreadable ({e}); remove the run directory or pick another --out") from None
    if saved is not None:
        changed = [k for k in RUN_IDENTITY if saved.get(k) != wanted[k]]
        if changed:
            diffs = ", ".join(f"{k}: {saved.get(k)!r} -> {wanted[k]!r}" for k in changed)
            raise UserError(f"{run_dir} holds a run with other settings ({diffs}); use another --out")
    elif write:
        write_json(path, wanted)


def _run_file(path: Path) -> str | None:
    """A run file's text, or None if there is none; a pipe or a device there is refused, not read forever."""
    if not path.exists():
        return None
    if not path.is_file():
        raise UserError(f"{path}: not a regular file; remove it or pick another --out")
    return path.read_text()


def _read_history(run_dir: Path) -> list[dict]:
    text = _run_file(run_dir / "history.json")
    return [] if text is None else json.loads(text)

