"""Rebuild the model that ships inside the package (edge/models/default_int8.tflite) with `train` + `export`.

    python tools/ship_model.py build [--out runs/shipped]   # train the default recipe (`cli.py train`), export, ship
    python tools/ship_model.py ship RUN_DIR                 # ship a run already trained: `cli.py export` only
    python tools/ship_model.py check [--out DIR]            # train again what the shipped file records; compare
    python tools/ship_model.py restage                      # add the layers' outputs to the shipped file (no training)

The shipped file's metadata records its run's settings (`source.config`), data and weights sha256
and library versions. Training is deterministic on one machine kind (CPU type, library versions):
`check` retrains those settings, exports, and prints one JSON line saying whether the weights and
the int8 flatbuffer came out identical (exit 1 if not). It writes nothing under edge/.
Needs the `train` extra and MNIST (`--data` or $DIGITCNN_DATA).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cli  # noqa: E402
from edge.atomic import atomic_write  # noqa: E402
from edge.cli import Cli  # noqa: E402
from edge.errors import UserError  # noqa: E402
from edge.metadata import bare_flatbuffer, embed_metadata, load_metadata, sha256  # noqa: E402
from edge.shipped import SHIPPED_MODEL  # noqa: E402


def _run_cli(*args: str) -> None:
    """One `cli.py` command in this process, as typed (its UserError stays one line)."""
    cli.main.main(list(args), standalone_mode=False)


def _export(run: Path, data: str | None) -> Path:
    _run_cli("export", str(run), "--quantize", "int8", *(["--data", data] if data else []))
    return run / "model_int8.tflite"


def _retrain(recorded: dict, out: Path, data: str | None) -> dict:
    """Train the recorded settings again into `out`; the metrics of the run."""
    from digitcnn.data import load_mnist
    from digitcnn.train import TrainConfig, train

    if load_mnist(data).sha256 != recorded["data_sha256"]:
        raise UserError(f"this MNIST ({data or 'the default'}) is not the data the shipped model was trained on "
                        f"(sha256 {recorded['data_sha256'][:16]}...)")
    try:  # a record without `usps` predates training on USPS: it trained on MNIST alone
        config = TrainConfig(**{"usps": False, **recorded["config"]}, out=str(out), data=data)
    except TypeError as e:
        raise UserError(f"the recorded settings do not fit this code's TrainConfig ({e})") from None
    return train(config)


def _ship(run: Path, data: str | None) -> None:
    model = _export(run, data)
    with atomic_write(SHIPPED_MODEL) as f, model.open("rb") as source:
        shutil.copyfileobj(source, f)
    click.echo(f"shipped {model} as {SHIPPED_MODEL.relative_to(ROOT)} ({SHIPPED_MODEL.stat().st_size:,} bytes)")


def _restage(data: str | None) -> None:
    """Give the shipped flatbuffer its stage outputs as `export` does (export/stages.py), its answers
    verified bit-identical on the MNIST test set; the rest of its metadata stays as exported."""
    from digitcnn.data import load_mnist
    from export.stages import with_stages

    model, meta = SHIPPED_MODEL.read_bytes(), load_metadata(SHIPPED_MODEL)
    if "stages" in meta:
        raise UserError(f"{SHIPPED_MODEL}: already has its stage outputs")
    flatbuffer, stages = with_stages(bare_flatbuffer(model), meta, load_mnist(data).x_test)
    tflite = embed_metadata(flatbuffer, {**meta, "stages": stages, "sha256": sha256(flatbuffer)})
    with atomic_write(SHIPPED_MODEL) as f:
        f.write(tflite)
    click.echo(f"restaged {SHIPPED_MODEL.relative_to(ROOT)}: {len(stages['layers'])} stages, answers identical on "
               f"{stages['verified_images']:,} images ({len(tflite):,} bytes)")


def _check(out: Path, data: str | None) -> bool:
    shipped = load_metadata(SHIPPED_MODEL)
    recorded = shipped["source"]
    if "config" not in recorded:
        raise UserError(f"{SHIPPED_MODEL}: its metadata records no training settings; ship it again")
    metrics = _retrain(recorded, out, data)
    rebuilt = load_metadata(_export(out, data))
    result = {"weights_identical": metrics["weights_sha256"] == recorded["weights_sha256"],
              "model_identical": rebuilt["sha256"] == shipped["sha256"],
              "weights_sha256": metrics["weights_sha256"], "shipped_weights_sha256": recorded["weights_sha256"],
              "versions": metrics["versions"], "shipped_versions": recorded["versions"]}
    click.echo(json.dumps(result))
    return result["weights_identical"] and result["model_identical"]


data_option = click.option("--data", type=click.Path(),
                           help="MNIST .npz or IDX folder (default: $DIGITCNN_DATA, else download).")


@click.group(cls=Cli)
def main() -> None:
    """Rebuild, or check, the model that ships inside the package."""


@main.command()
@click.option("--out", type=click.Path(file_okay=False), default=str(ROOT / "runs" / "shipped"), show_default=True)
@data_option
def build(out: str, data: str | None) -> None:
    """Train the default recipe, as `cli.py train` does, then export and ship it."""
    _run_cli("train", "--out", out, *(["--data", data] if data else []))
    _ship(Path(out), data)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@data_option
def ship(run_dir: str, data: str | None) -> None:
    """Export a trained run and ship it (no training)."""
    _ship(Path(run_dir), data)


@main.command()
@click.option("--out", type=click.Path(file_okay=False), default=str(ROOT / "runs" / "shipped-check"),
              show_default=True)
@data_option
def check(out: str, data: str | None) -> None:
    """Retrain the shipped model's recorded settings; exit 1 unless weights and model come out identical."""
    sys.exit(0 if _check(Path(out), data) else 1)


@main.command()
@data_option
def restage(data: str | None) -> None:
    """Add each layer's output to the shipped model, answers unchanged (no training)."""
    _restage(data)


if __name__ == "__main__":
    main()
