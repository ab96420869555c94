"""The evaluator of a multi-worker job (TF_CONFIG task type `evaluator`, as a TFJob writes it).

It trains nothing: it scores each epoch checkpoint the chief writes on the run's validation images,
as it appears, into the run's TensorBoard log (`eval`), so the workers never stop to evaluate.
It ends after the run's last epoch.
"""

from __future__ import annotations

import json
import os

from edge.errors import UserError


def task_type() -> str | None:
    """This process's role in TF_CONFIG (`chief`, `worker`, `evaluator`), or None without one."""
    try:
        return json.loads(os.environ.get("TF_CONFIG") or "{}").get("task", {}).get("type")
    except (json.JSONDecodeError, AttributeError) as e:
        raise UserError(f"TF_CONFIG is not a JSON object with a task ({e})") from None


def evaluate_checkpoints(cfg, log=print) -> list[dict]:
    """Score every new checkpoint of `cfg`'s run until the one of its last epoch; return the scores."""
    import tensorflow as tf

    from digitcnn import data as data_lib
    from digitcnn.model import build_model
    from digitcnn.train import evaluate_logits

    mnist = data_lib.load_mnist(cfg.data)
    _, _, x_val, y_val = data_lib.run_split(mnist.x_train, mnist.y_train, val_size=cfg.val_size, seed=cfg.seed,
                                            subset=cfg.subset)
    model = build_model(cfg.model)
    epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    checkpoint = tf.train.Checkpoint(model=model, epoch=epoch)
    writer = tf.summary.create_file_writer(str(cfg.run_dir() / "tensorboard" / "eval"))
    scores = []
    # Polls the folder; the chief names a checkpoint in its state file only once it is complete.
    for path in tf.train.checkpoints_iterator(str(cfg.run_dir() / "checkpoints"), min_interval_secs=1):
        checkpoint.restore(path).expect_partial()
        val_loss, val_acc = evaluate_logits(model, x_val, y_val)
        scores.append({"epoch": int(epoch.numpy()), "val_loss": val_loss, "val_accuracy": val_acc})
        log(f"evaluated epoch {scores[-1]['epoch']}/{cfg.epochs}  val_loss {val_loss:.4f}  val_acc {val_acc:.4f}")
        with writer.as_default(step=scores[-1]["epoch"]):
            tf.summary.scalar("val_accuracy", val_acc)
            tf.summary.scalar("val_loss", val_loss)
        if scores[-1]["epoch"] >= cfg.epochs:
            return scores
    return scores
