"""Where a training step's time goes, part by part; prints one JSON line.

    python bench/step_profile.py [--model lenet-plus] [--steps 40] [--rounds 3]

Each part runs in a fresh process (op determinism is process-wide), on one batch of the default
size, after a warm-up; the rounds go A B C ... A B C ... so that the machine's drift hits every part
alike, and each figure is the median over rounds of milliseconds per step, wall and CPU (this machine
has 2 cores: CPU time above wall time means both were busy). The parts:

- `step`: the training step exactly as `train` runs it (one device, op determinism on);
- `no_determinism`: the same without `enable_op_determinism`;
- `synchronized_bn`: the same with batch norm synchronized across replicas (one replica here);
- `forward`, `backward`: the forward pass alone, and forward plus gradients without the update;
- `dispatch`: `strategy.run` of a function that does nothing: Python and tf.distribute per step;
- `wait_each_step`: the step plus reading the loss back after every step, as a progress bar would;
- `input`: the input pipeline alone (batches of shuffled, augmented images).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PARTS = ("step", "no_determinism", "synchronized_bn", "forward", "backward", "dispatch", "wait_each_step",
         "input")


def _measure(part: str, model_name: str, steps: int) -> dict:
    """ms per step (wall, CPU) of one part, timed in this process."""
    import keras
    import tensorflow as tf

    from digitcnn.augment import Augmentation
    from digitcnn.data import training_batches
    from digitcnn.distribute import choose_strategy
    from digitcnn.model import build_model
    from digitcnn.train import TrainConfig, make_train_step

    cfg = TrainConfig(model=model_name)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (cfg.batch_size * (steps + 5), 28, 28), np.uint8)
    y = rng.integers(0, 10, len(x)).astype(np.int32)
    if part == "input":
        batches = iter(training_batches(x, y, cfg.batch_size, seed=1, epochs=range(1),
                                        augmentation=Augmentation(**cfg.augmentation)))
        run = lambda: next(batches)  # noqa: E731
    else:
        keras.utils.set_random_seed(1)
        if part != "no_determinism":
            tf.config.experimental.enable_op_determinism()
        strategy = choose_strategy("one")
        with strategy.scope():
            model = build_model(model_name, synchronized=part == "synchronized_bn")
            optimizer = keras.optimizers.AdamW(1e-3, weight_decay=cfg.weight_decay)
            optimizer.build(model.trainable_variables)
        images = tf.constant(x[: cfg.batch_size, ..., None] / 255.0, tf.float32)
        labels = tf.constant(y[: cfg.batch_size])
        if part == "forward":
            step = tf.function(lambda: model(images, training=True))
        elif part == "backward":
            def gradients():
                with tf.GradientTape() as tape:
                    loss = tf.reduce_mean(model(images, training=True))
                return tape.gradient(loss, model.trainable_variables)
            step = tf.function(gradients)
        elif part == "dispatch":
            step = tf.function(lambda: strategy.run(lambda i, l: (tf.constant(0.0), tf.constant(0.0)),
                                                    args=(images, labels)))
        else:
            train_step = make_train_step(strategy, model, optimizer, cfg.label_smoothing, cfg.batch_size)
            step = lambda: train_step((images, labels))  # noqa: E731
        run = (lambda: float(step()[0])) if part == "wait_each_step" else step
    for _ in range(5):
        run()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        result = run()
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, result)  # wait for the last
    return {"wall_ms": 1000 * (time.perf_counter() - wall) / steps, "cpu_ms": 1000 * (time.process_time() - cpu) / steps}


@click.command()
@click.option("--model", default="lenet-plus", show_default=True)
@click.option("--steps", type=click.IntRange(min=5), default=40, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--part", type=click.Choice(PARTS), hidden=True, help="Internal: time one part in this process.")
def main(model: str, steps: int, rounds: int, part: str | None) -> None:
    from digitcnn.train import TrainConfig

    if part:
        print(json.dumps(_measure(part, model, steps)))
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    runs: dict[str, list[dict]] = {p: [] for p in PARTS}
    for _ in range(rounds):
        for p in PARTS:
            out = subprocess.run([sys.executable, __file__, "--model", model, "--steps", str(steps), "--part", p],
                                 check=True, capture_output=True, text=True, env=env).stdout
            runs[p].append(json.loads(out.splitlines()[-1]))
    median = {p: {k: round(statistics.median(r[k] for r in rs), 2) for k in ("wall_ms", "cpu_ms")}
              for p, rs in runs.items()}
    print(json.dumps({"bench": "step_profile", "model": model, "batch": TrainConfig().batch_size, "steps": steps,
                      "rounds": rounds, "ms_per_step": median}))


if __name__ == "__main__":
    main()
