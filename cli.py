"""digitcnn command line: train, export and run handwritten-digit models.

TensorFlow is imported inside the commands that need it, so the edge commands start fast.
"""

from __future__ import annotations

import os

import click

from edge.errors import UserError


class Cli(click.Group):
    """Turns a UserError anywhere below into a one-line message and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=Cli)
def main() -> None:
    """Handwritten digits from training to a $50 board."""


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@main.command()
@click.option("--model", type=click.Choice(["lenet5", "lenet-plus"]), default="lenet-plus", show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True, help="Per replica.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3, show_default=True,
              help="Peak learning rate for a global batch of 128; scaled by sqrt(global batch / 128).")
@click.option("--label-smoothing", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True)
@click.option("--data", type=click.Path(), help="MNIST .npz or IDX folder (default: $DIGITCNN_DATA, else download).")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (default: runs/<model>).")
@click.option("--strategy", type=click.Choice(["auto", "one", "mirrored", "multiworker"]), default="auto",
              show_default=True)
@click.option("--devices", type=click.IntRange(min=1), default=1, show_default=True,
              help="Split the CPU into N logical devices (mirrored training without GPUs).")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--subset", type=click.IntRange(min=2), help="Train on the first N training images (smoke tests).")
@click.option("--mixed-precision", is_flag=True, help="float16 compute (GPUs only).")
def train(**options) -> None:
    """Train a model; rerunning the same command resumes the run from its last epoch."""
    _quiet_tensorflow()
    from digitcnn.train import TrainConfig, train as run_training

    m = run_training(TrainConfig(**options))
    rows = [
        ("test accuracy", f"{m['test_accuracy']:.4f}"),
        ("val accuracy", f"{m['val_accuracy']:.4f}"),
        ("wall time", f"{m['wall_seconds']:.0f} s"),
        ("images/s", f"{m['images_per_second']:.0f}"),
        ("strategy", f"{m['strategy']} x {m['replicas']}"),
        ("parameters", f"{m['params']:,}"),
        ("weights", m["weights_sha256"][:16]),
        ("run", m["run_dir"]),
    ]
    for name, value in rows:
        click.echo(f"{name:>14}  {value}")


if __name__ == "__main__":
    main()
