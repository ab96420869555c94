"""Benchmark: time to accuracy, ours against the Keras "Simple MNIST convnet" example, side by side.

    python bench/time_to_accuracy.py [--seeds 1,2,3] [--data PATH] [--keep DIR] [--busy]   # prints one JSON line

The Keras example (keras-io examples/vision/mnist_convnet.py, written here from its description:
two 3x3 convolutions of 32 and 64 filters with max pooling, dropout 0.5, softmax; Adam, batch 128,
15 epochs, 10% of the training images held out for validation) is what most people would train
instead. It runs first, then our default recipe once per seed, then `--model lenet5`, one after the
other in this one benchmark run, each in a fresh process. Times on this machine swing by 5x between
hours, so the results that count are the ratios of times measured in the same run.

Each contender's clock starts before it loads MNIST and stops at the end of each epoch; the test
accuracy measured after every epoch (for this benchmark only: training chooses nothing on it) is
taken off the clock. `--busy` keeps one core busy with a spinning Python process for the whole run, as
a laptop's other programs would. Targets: the default recipe's mean over seeds reaches >= 99.55% in at most 1.5x
the Keras example's 15 epochs; lenet5 reaches 99.23% in at most half the time the example needs to.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contextlib import contextmanager

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LEVELS = (0.99, 0.9923, 0.996)
TARGETS = {"default_vs_keras": 1.5, "default_accuracy": 0.9955, "lenet5_vs_keras_to_99.23": 0.5}  # MNIST: issue 25


class Timeline:
    """Seconds of training and test accuracy after each epoch; measuring is taken off the clock."""

    def __init__(self, x_test: np.ndarray, y_test: np.ndarray):
        self.x_test, self.y_test = x_test, y_test
        self.start, self.paused, self.epochs = time.perf_counter(), 0.0, []

    def __call__(self, epoch: int, model) -> None:
        stop = time.perf_counter()
        from digitcnn.train import evaluate_logits

        accuracy = evaluate_logits(model, self.x_test, self.y_test)[1]
        self.epochs.append({"epoch": epoch, "seconds": round(stop - self.start - self.paused, 2),
                            "test_accuracy": accuracy})
        self.paused += time.perf_counter() - stop


def keras_example(data: str | None) -> list[dict]:
    """The Keras example's recipe, as its page describes it."""
    import keras
    from keras import layers

    from digitcnn.data import load_mnist, scale_pixels

    keras.utils.set_random_seed(1)
    mnist = load_mnist(data)
    timeline = Timeline(mnist.x_test, mnist.y_test)
    x_train = scale_pixels(mnist.x_train[..., None].astype(np.float32))
    y_train = keras.utils.to_categorical(mnist.y_train, 10)
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    callback = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: timeline(epoch + 1, model))
    model.fit(x_train, y_train, batch_size=128, epochs=15, validation_split=0.1, verbose=0, callbacks=[callback])
    return timeline.epochs


def ours(data: str | None, model: str, seed: int | None, keep: str | None) -> list[dict]:
    """`python cli.py train --model MODEL [--seed SEED]` with its defaults, in `keep`/MODEL-seedSEED or a
    scratch directory (a kept run can be exported, evaluated or shipped like any other)."""
    from digitcnn.data import load_mnist
    from digitcnn.train import TrainConfig, train

    mnist = load_mnist(data, train=False)
    settings = {"model": model, "data": data, **({"seed": seed} if seed is not None else {})}
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(keep) / f"{model}-seed{TrainConfig(**settings).seed}" if keep else scratch
        timeline = Timeline(mnist.x_test, mnist.y_test)  # the clock starts before train() loads MNIST
        train(TrainConfig(**settings, out=str(out)), log=lambda *_: None, on_epoch_end=timeline)
    return timeline.epochs


def _run(*args: str) -> tuple[list[dict], dict]:
    """One contender in a fresh process, so no TensorFlow state (determinism, seeds) carries over; its
    epochs and the CPU seconds the whole process spent, in user space and in the kernel (a shared machine
    stretches wall time, much less these)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, __file__, "--contender", *args], check=True, capture_output=True,
                         text=True, env=env).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {"cpu_user_seconds": round(after.ru_utime - before.ru_utime, 1),
           "cpu_system_seconds": round(after.ru_stime - before.ru_stime, 1),
           "minor_page_faults": after.ru_minflt - before.ru_minflt}
    return json.loads(out.splitlines()[-1]), cpu


def _summary(run: tuple[list[dict], dict]) -> dict:
    """When each accuracy level was first reached (None: never), the whole run's time and its end, and
    the process's CPU seconds."""
    epochs, cpu = run
    reached = {f"seconds_to_{100 * level:.4g}": next((e["seconds"] for e in epochs if e["test_accuracy"] >= level), None)
               for level in LEVELS}
    return {"epochs": len(epochs), "seconds": epochs[-1]["seconds"], "test_accuracy": epochs[-1]["test_accuracy"],
            **reached, **cpu, "per_epoch": [[e["seconds"], round(e["test_accuracy"], 4)] for e in epochs]}


@contextmanager
def _one_core_busy(busy: bool):
    """A process spinning on one core while the contenders run (none unless `busy`)."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        yield
    finally:
        if spinner:
            spinner.kill()
            spinner.wait()


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


@click.command()
@click.option("--seeds", default="1,2,3", show_default=True, help="Seeds of the default recipe.")
@click.option("--data", type=click.Path(exists=True), help="MNIST npz (default: $DIGITCNN_DATA or download).")
@click.option("--keep", type=click.Path(file_okay=False),
              help="Keep our runs in DIR/MODEL-seedN (they must not exist yet), instead of scratch directories.")
@click.option("--busy", is_flag=True, help="Keep one core busy (a spinning process) while the contenders run.")
@click.option("--contender", nargs=3, hidden=True, help="Internal: run one contender (kind model seed).")
def main(seeds: str, data: str | None, keep: str | None, busy: bool, contender: tuple[str, str, str] | None) -> None:
    if contender:
        kind, model, seed = contender
        epochs = (keras_example(data) if kind == "keras"
                  else ours(data, model, None if seed == "-" else int(seed), keep))
        print(json.dumps(epochs))
        return
    options = [*(["--data", data] if data else []), *(["--keep", keep] if keep else [])]
    with _one_core_busy(busy):
        keras_run = _summary(_run("keras", "-", "-", *options))
        default = {seed: _summary(_run("ours", "lenet-plus", seed, *options)) for seed in seeds.split(",")}
        lenet5 = _summary(_run("ours", "lenet5", "-", *options))
    mean_accuracy = float(np.mean([r["test_accuracy"] for r in default.values()]))
    mean_seconds = float(np.mean([r["seconds"] for r in default.values()]))
    cpu = lambda r: r["cpu_user_seconds"] + r["cpu_system_seconds"]  # noqa: E731
    mean_cpu = float(np.mean([cpu(r) for r in default.values()]))
    result = {
        "bench": "time_to_accuracy",
        "one_core_busy": busy,
        "keras_example": keras_run,
        "default": {"seeds": default, "mean_test_accuracy": round(mean_accuracy, 5),
                    "mean_seconds": round(mean_seconds, 1)},
        "lenet5": lenet5,
        "ratios": {
            "default_vs_keras": _ratio(mean_seconds, keras_run["seconds"]),
            "default_cpu_seconds_vs_keras": _ratio(mean_cpu, cpu(keras_run)),
            "lenet5_vs_keras_to_99.23": _ratio(lenet5["seconds_to_99.23"], keras_run["seconds_to_99.23"]),
            "lenet5_to_99.23_vs_keras_15_epochs": _ratio(lenet5["seconds_to_99.23"], keras_run["seconds"]),
        },
        "targets": TARGETS,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
