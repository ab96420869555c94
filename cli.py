"""digitcnn command line: train, export and run handwritten-digit models.

TensorFlow is imported inside the commands that need it, so the edge commands start fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from edge import cli as edge_cli
from edge.cli import Cli, Finite, chosen_model, describe, model_flag
from edge.errors import UserError
from edge.metadata import VARIANTS


@click.group(cls=Cli)
def main() -> None:
    """Handwritten digits from training to a $50 board."""


def _import_tensorflow(*models: str | Path) -> None:
    """Import TensorFlow now, without its no-GPU noise (digitcnn/quiet.py), for a command that needs it: training,
    export, or reading .keras models (with only .tflite models given, nothing)."""
    if models and not any(Path(m).suffix == ".keras" for m in models):
        return
    from digitcnn.quiet import import_tensorflow

    import_tensorflow()


@main.command()
@click.option("--model", type=click.Choice(["lenet5", "lenet-plus"]), default="lenet-plus", show_default=True)
@click.option("--epochs", type=click.IntRange(1, 10_000), default=19, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True, help="Per replica.")
@click.option("--lr", type=Finite(min=0, min_open=True), default=3e-3, show_default=True,
              help="Peak learning rate for a global batch of 128; scaled by sqrt(global batch / 128).")
@click.option("--label-smoothing", type=Finite(0, 1, max_open=True), default=0.1, show_default=True)
@click.option("--data", type=click.Path(), help="MNIST .npz or IDX folder (default: $DIGITCNN_DATA, else download).")
@click.option("--out", type=click.Path(file_okay=False), help="Run directory (default: runs/<model>).")
@click.option("--strategy", type=click.Choice(["auto", "one", "mirrored", "multiworker"]), default="auto",
              show_default=True)
@click.option("--devices", type=click.IntRange(min=1), default=1, show_default=True,
              help="Split the CPU into N logical devices (mirrored training without GPUs).")
@click.option("--seed", type=click.IntRange(0, 2**32 - 1), default=1, show_default=True)
@click.option("--styles", type=Finite(0, 1), default=0.3, show_default=True,
              help="Share of the styled digits redrawn in styles MNIST lacks (crossed 7s, g-like and mirrored "
                   "9s; continental 1s, closed and open 4s, straight 9s with --style); 0 for none (docs/train.md).")
@click.option("--style", "style_names", multiple=True, metavar="NAME",
              help="Draw this style (repeatable; default: crossed_seven, curled_nine, mirrored_nine; all the "
                   "names: docs/train.md).")
@click.option("--usps", "usps_path", type=click.Path(dir_okay=False),
              help="usps.npz whose training split joins MNIST's (default: $DIGITCNN_DATASETS/usps/usps.npz if there).")
@click.option("--no-usps", is_flag=True, help="Train on MNIST alone.")
@click.option("--negatives", type=Finite(0, 1, max_open=True),
              help="Share of each batch that is generated shapes that are not digits, taught as unsure of every "
                   "digit (outlier exposure: docs/train.md); 0 turns it off. Default: 0.2 with USPS, 0 without.")
@click.option("--subset", type=click.IntRange(min=2), help="Train on the first N training images (smoke tests).")
@click.option("--augment-on", type=click.Choice(["auto", "host", "device"]), default="auto", show_default=True,
              help="Where the random warp runs: in the input pipeline on the host's cores, or in the train step on "
                   "each replica's device; auto: the device on GPUs, the host on a CPU. The same weights either way.")
@click.option("--mixed-precision", is_flag=True, help="float16 compute (GPUs only).")
@click.option("--profile", is_flag=True,
              help="Write a TensorBoard trace of a few steps (tensorboard --logdir RUN_DIR/tensorboard, Profile tab).")
def train(**options) -> None:
    """Train a model; rerunning the same command resumes the run from its last epoch."""
    from digitcnn.styles import STYLES, check_names

    styles, names, no_usps = options.pop("styles"), options.pop("style_names"), options.pop("no_usps")
    check_names(names)
    if no_usps and options["usps_path"]:
        raise UserError("--usps and --no-usps contradict each other; give one")
    _import_tensorflow()
    from digitcnn.train import TrainConfig, train as run_training

    config = TrainConfig(**options, usps=not no_usps)
    config.augmentation["styles"] = styles
    if names:  # in STYLES' order, however they were typed: the same styles, the same run
        config.augmentation["style_names"] = [n for n in STYLES if n in names]
    from digitcnn.evaluator import evaluate_checkpoints, task_type

    if task_type() == "evaluator":  # a TFJob's evaluator scores the chief's checkpoints as they appear
        evaluate_checkpoints(config)
        return
    m = run_training(config)
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


@main.command()
@click.argument("source", metavar="RUN_DIR|MODEL.keras", type=click.Path())
@click.option("--quantize", type=click.Choice([*VARIANTS, "all"]), default="int8", show_default=True)
@click.option("--out", type=click.Path(file_okay=False), help="Output directory (default: beside the model).")
@click.option("--max-drop", type=Finite(), default=0.3, show_default=True,
              help="Refuse a variant whose test accuracy is more than this many percentage points below Keras'.")
@click.option("--data", type=click.Path(), help="MNIST .npz or IDX folder (default: $DIGITCNN_DATA, else download).")
def export(source: str, quantize: str, out: str | None, max_drop: float, data: str | None) -> None:
    """Convert a trained run into verified, self-describing model_<variant>.tflite (+ .json) files."""
    _import_tensorflow()
    from export.pipeline import export_run

    variants = list(VARIANTS) if quantize == "all" else [quantize]
    results = []
    for exported in export_run(source, variants, out, max_drop, data):
        if not results:
            click.echo(f"{'variant':<8} {'bytes':>9} {'accuracy':>9} {'agreement':>10} {'max|dp|':>8} "
                       f"{'latency/image':>13}  file")
        results.append(exported)
        scores = exported.verification
        diff = "-" if scores["max_abs_diff"] is None else f"{scores['max_abs_diff']:.1e}"
        click.echo(f"{exported.variant:<8} {exported.size:>9,} {scores['test_accuracy']:>9.2%} "
                   f"{scores['agreement']:>10.2%} {diff:>8} {exported.latency * 1e6:>10.0f} us  "
                   f"{exported.path or 'not written'}")
    scores = results[-1].verification
    click.echo(f"Keras model: {scores['keras_test_accuracy']:.2%} on {scores['images']:,} test images; "
               "agreement = same top-1 class as Keras; latency at batch 1, one thread")
    failures = [e.failure for e in results if e.failure]
    if failures:
        raise UserError(" | ".join(failures))


@main.command()
@click.argument("models", nargs=-1, metavar="[MODEL...]")
@click.option("--model", "flagged", multiple=True, type=click.Path(dir_okay=False),
              help="A model to score, as the arguments (repeatable; default: the one shipped with digitcnn).")
@click.option("--data", type=click.Path(),
              help="A labelled image folder (DIR/<digit>/* or DIR/<digit>_*.png), or an MNIST .npz or IDX folder "
                   "(default: the MNIST test set from $DIGITCNN_DATA, else the download).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False),
              help="Report folder (default: <model stem>_report/ beside the model).")
@click.option("--robustness", is_flag=True, help="Also score MNIST test digits rotated, shifted, blurred, ...")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N images (and N for --robustness).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
def evaluate(models: tuple[str, ...], flagged: tuple[str, ...], data: str | None, report_dir: str | None,
             robustness: bool, limit: int | None, as_json: bool) -> None:
    """Score .tflite or .keras models (several: side by side; none: the shipped one) and write a report with
    plots and report.html."""
    import json

    from digitcnn.evaluate import (check_model_path, evaluate as score, is_image_folder, load_labelled,
                                   mnist_test, open_model)
    from digitcnn.report import default_report_dir, headline_lines, model_names, write_report
    from digitcnn.robustness import robustness_table

    paths = [check_model_path(m) for m in (models + flagged or (chosen_model(),))]  # before any slow loading
    _import_tensorflow(*paths)
    labelled = load_labelled(data, limit)
    if labelled.skipped:
        click.echo(f"{len(labelled.skipped)} files left out of {data}:", err=True)
        for message in labelled.skipped:
            click.echo(f"  {message}", err=True)
    loaded = [open_model(p) for p in paths]
    table = None
    if robustness:
        digits = mnist_test(limit=limit) if is_image_folder(data) else labelled
        table = {"data": digits.source, "n": len(digits), "models": model_names(paths),
                 "rows": robustness_table(loaded, digits)}
    result = write_report([score(m, labelled) for m in loaded], report_dir or default_report_dir(paths), table)
    if as_json:
        single = {**result["models"][0], **{k: v for k, v in result.items() if k != "models"}}
        click.echo(json.dumps(single if len(paths) == 1 else result))
    else:
        for line in headline_lines(result):
            click.echo(line)


@main.command()
@click.argument("arguments", nargs=-1, required=True, metavar="[MODEL] IMAGE")
@model_flag
@click.option("--out", type=click.Path(dir_okay=False),
              help="PNG to write (default: <image stem>_explained.png beside the image).")
@click.option("--json", "as_json", is_flag=True,
              help="Print each layer's stored int8 values, the first filters and the multiply-adds as one JSON "
                   "object instead of drawing (a .tflite exported with its stages; no TensorFlow needed).")
def explain(arguments: tuple[str, ...], model_flag: str | None, out: str | None, as_json: bool) -> None:
    """Draw how the network reads one image, layer by layer, from the pixels to the answer (MODEL: a .tflite or
    .keras file; default: the shipped one)."""
    from edge.atomic import refuse_overwriting

    if len(arguments) > 2:
        raise click.UsageError("give at most a model and one image")
    *given, image = arguments
    model = chosen_model(model_flag, *given)
    if as_json:
        return _explain_json(model, image)
    path = Path(out) if out else Path(image).with_name(f"{Path(image).stem}_explained.png")
    if path.suffix.lower() != ".png":  # so never the model (.tflite or .keras)
        raise UserError(f"{path}: the drawing is a PNG; give a name ending in .png")
    refuse_overwriting(path, {"the image being explained": Path(image)})
    _import_tensorflow(model)
    from digitcnn.evaluate import check_model_path
    from edge.labelled import frame
    import numpy as np

    from digitcnn.explain import draw, explainer
    from digitcnn.figures import write_png
    from edge.confidence import Confidence
    from edge.metadata import load_metadata
    from edge.preprocess import load_image

    pixels = frame(load_image(image)) if check_model_path(model) else None  # both checked before loading
    if pixels is None:
        raise UserError(f"{image}: no digit found")
    stages = explainer(model)(pixels)
    write_png(draw(stages, f"{Path(model).name} reading {Path(image).name}"), path, dpi=80)
    probs = stages[-1].values  # calibrated for a .tflite model (digitcnn/explain.py)
    rule = Confidence.of(load_metadata(model)) if Path(model).suffix == ".tflite" else Confidence()
    (digit,) = rule.answers(probs[None])
    top = [[int(d), float(probs[d])] for d in np.argsort(probs)[::-1][:3]]
    answer = {"digit": None if digit < 0 else int(digit), "confidence": float(probs.max()), "top": top}
    click.echo(f"{describe(answer)}  {path}")


def _explain_json(model: str, image: str) -> None:
    """`explain --json`: the edge runner's stages (edge/inside.py), without TensorFlow or matplotlib."""
    import json
    from pathlib import Path

    from edge.inside import Inside
    from edge.labelled import frame
    from edge.preprocess import load_image
    from edge.runner import DigitModel

    if Path(model).suffix != ".tflite":
        raise UserError(f"{model}: --json reads the stages of a .tflite model; export it first")
    inside = Inside(DigitModel(model))
    pixels = frame(load_image(image))
    if pixels is None:
        raise UserError(f"{image}: no digit found")
    (reading,) = inside.model.read(pixels[None])
    click.echo(json.dumps({"image": image, "model": model, **reading.as_json(), **inside.read(pixels)}))


for command in edge_cli.main.commands.values():
    main.add_command(command)

if __name__ == "__main__":
    main()
