"""The edge commands (predict, camera, bench, serve, page, teach): what `python cli.py` and `python -m edge` both offer.

Nothing here imports TensorFlow, so a Pi with only the `edge` extra runs all of it.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import sys
from typing import Callable

import click

from edge.errors import UserError
from edge.extras import install_hint
from edge.shipped import SHIPPED_MODEL

MAX_THREADS = 64
"""More threads than any board this runs on has cores; LiteRT crashes on tens of thousands."""


class Finite(click.FloatRange):
    """A FloatRange that also refuses nan (which passes every bound) and inf (which an open-ended range lets in)."""

    name = "finite float range"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class Cli(click.Group):
    """Turns a UserError anywhere below, a missing extra's module, or what the system refused (a full disk, a
    folder it may not read), into a one-line message and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UserError as e:
            raise click.ClickException(str(e)) from None
        except ModuleNotFoundError as e:  # an extra not installed: say which, not a traceback
            hint = install_hint(e)
            if hint is None:
                raise
            raise click.ClickException(hint) from None
        except OSError as e:
            if e.errno == errno.EPIPE:  # the reader of our output has gone (`| head`): click ends quietly
                raise
            raise click.ClickException(f"{e.filename}: {e.strerror}" if e.filename else str(e.strerror or e)) from None


def describe(answer: dict) -> str:
    """An answer as predict prints it: the digit and its confidence, or "no digit" and the best guess."""
    if "number" in answer:
        return answer["number"].replace("\n", " / ") or "no digits"
    if answer["digit"] is None:
        return "no digit" + (f" (best guess {answer['top'][0][0]}, {answer['top'][0][1]:.3f})" if answer["top"] else "")
    return f"{answer['digit']}  ({answer['confidence']:.3f})"


def chosen_model(*given: str | None) -> str:
    """The one model given (by --model or by position), else the shipped one, said on stderr."""
    models = [m for m in given if m]
    if len(models) > 1:
        raise UserError(f"two models given ({models[0]} and {models[1]}): give one")
    if models:
        return models[0]
    click.echo(f"model: {SHIPPED_MODEL} (shipped)", err=True)
    return str(SHIPPED_MODEL)


model_flag = click.option("--model", "model_flag", type=click.Path(dir_okay=False),
                          help="The .tflite model (default: the one shipped with digitcnn).")


def model_argument(command: Callable) -> Callable:
    """An optional MODEL argument, or --model; the command gets `model`, the shipped one if neither is given."""

    @functools.wraps(command)
    def with_model(*args, model: str | None, model_flag: str | None, **kwargs):
        return command(*args, model=chosen_model(model_flag, model), **kwargs)

    return click.argument("model", required=False, type=click.Path(dir_okay=False))(model_flag(with_model))


def model_and_inputs(command: Callable) -> Callable:
    """[MODEL.tflite] INPUTS...: a first argument ending in .tflite is the model (else --model, else the shipped
    one); the command gets `model` and `inputs`."""

    @functools.wraps(command)
    def split(*args, arguments: tuple[str, ...], model_flag: str | None, **kwargs):
        given = arguments[0] if arguments[0].lower().endswith(".tflite") else None
        inputs = arguments[1:] if given else arguments
        if not inputs:
            raise click.UsageError("give one or more images (files or folders) after the model")
        return command(*args, model=chosen_model(model_flag, given), inputs=inputs, **kwargs)

    return click.argument("arguments", nargs=-1, required=True, metavar="[MODEL.tflite] INPUTS...")(model_flag(split))


threads_option = click.option("--threads", type=click.IntRange(1, MAX_THREADS),
                              help="Interpreter threads (default: LiteRT's).")
threshold_option = click.option("--threshold", type=Finite(0, 1),
                                help="Under this confidence the answer is 'no digit' (default: the model's own, "
                                     "from its metadata; 0.5 for models exported without one).")


@click.command()
@model_and_inputs
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input, one per line.")
@click.option("--multi", is_flag=True, help="Read a written number: every digit, left to right, line by line.")
@threshold_option
@click.option("--top", "top_k", type=click.IntRange(1, 10), default=3, show_default=True)
@threads_option
def predict(model: str, inputs: tuple[str, ...], as_json: bool, multi: bool, threshold: float, top_k: int,
            threads: int | None) -> None:
    """Read the digit in each image file (or each image in a folder); with no model given, the shipped one answers."""
    from edge.predict import expand_inputs, predict_files
    from edge.runner import DigitModel

    digit_model = DigitModel(model, threads)
    files = expand_inputs(inputs)
    if not files:
        raise UserError(f"no image files in {', '.join(inputs)}")
    failed = 0
    for answer in predict_files(digit_model, files, threshold=threshold, top_k=top_k, multi=multi):
        failed += "error" in answer
        if as_json:
            click.echo(json.dumps(answer))
        elif "error" in answer:  # its message names the file already
            click.echo(answer["error"])
        elif len(files) == 1:
            click.echo(describe(answer))
        else:
            click.echo(f"{answer['file']}: {describe(answer)}")
    if failed:
        click.echo(f"{failed} of {len(files)} inputs failed", err=True)
        sys.exit(1)


@click.command()
@model_argument
@click.option("--source", default="0", show_default=True,
              help="Camera index, 'picamera2', a video file or a folder of images.")
@click.option("--headless", is_flag=True, help="No window: one JSON line per frame.")
@click.option("--roi", type=Finite(0.05, 1), default=0.6, show_default=True,
              help="Side of the centred square read, as a fraction of the frame's shorter side.")
@click.option("--max-frames", type=click.IntRange(min=1), help="Stop after N frames.")
@threshold_option
@threads_option
def camera(model: str, source: str, headless: bool, roi: float, max_frames: int | None, threshold: float,
           threads: int | None) -> None:
    """Read digits live from a camera (or a video, or a folder); Ctrl-C or 'q' stops."""
    from edge.camera import open_source, run
    from edge.runner import DigitModel

    digit_model = DigitModel(model, threads)
    summary = run(digit_model, open_source(source, warn=lambda message: click.echo(message, err=True)),
                  roi_fraction=roi, threshold=threshold, max_frames=max_frames, show=not headless, emit=click.echo)
    click.echo(str(summary), err=True)


@click.command()
@model_argument
@threads_option
@click.option("--seconds", type=Finite(0.1, 3600), default=2.0, show_default=True,
              help="Time spent on each measurement.")
def bench(model: str, threads: int | None, seconds: float) -> None:
    """Latency percentiles at batch 1 and throughput at batch 256, as one JSON line."""
    from edge.bench import benchmark

    click.echo(json.dumps(benchmark(model, threads, seconds)))


@click.command()
@model_argument
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 lets phones on the same network in.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, MAX_THREADS),
              help="Threads reading uploaded images (default: one per core).")
def serve(model: str, host: str, port: int, workers: int | None) -> None:
    """Serve the phone page: the model runs in the browser, with the server as fallback."""
    import uvicorn

    from edge.serve import create_app, listen, server_config

    app = create_app(model, workers=workers)
    sock = listen(host, port)
    click.echo(f"serving {model} on http://{host}:{port}  (Ctrl-C stops)")
    uvicorn.Server(server_config(app, host, port)).run(sockets=[sock])


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@model_flag
def page(out: str, model_flag: str | None) -> None:
    """Write the phone page as a static site in OUT: any static host (GitHub Pages, https) serves it, at its
    root or under a sub-path; installable, and it works offline. OUT must be new, empty or an earlier build
    (replaced whole)."""
    from edge.build import cache_name, model_site, write_site

    model = chosen_model(model_flag)
    files = model_site(model)
    write_site(out, files)
    size = sum(map(len, files.values()))
    click.echo(f"wrote {out}: {len(files)} files, {size / 1e6:.1f} MB, {model} ({cache_name(files)})")


@click.command()
@click.argument("samples", type=click.Path(file_okay=False))
@click.option("--model", type=click.Path(dir_okay=False),
              help="The model to adapt (a .tflite exported with its features output; default: the shipped one).")
@click.option("--out", type=click.Path(dir_okay=False), help="Adapted model to write (default: SAMPLES.tflite beside "
              "the folder).")
def teach(samples: str, model: str | None, out: str | None) -> None:
    """Adapt a model to your handwriting from SAMPLES, a folder of your digits (SAMPLES/<digit>/*.png or
    SAMPLES/<digit>_*.png), and write the adapted model: use it wherever a model goes."""
    from pathlib import Path

    from edge.teach import default_output, teach as run_teach

    taught = run_teach(Path(samples), Path(chosen_model(model)), Path(out) if out else default_output(Path(samples)))
    if taught.left_out:
        click.echo(f"{len(taught.left_out)} files left out of {samples}:", err=True)
        for message in taught.left_out:
            click.echo(f"  {message}", err=True)
    click.echo(f"{'digit':>8} " + " ".join(f"{d:>3}" for d in range(10)))
    click.echo(f"{'samples':>8} " + " ".join(f"{n:>3}" for n in taught.samples))
    click.echo(f"{'misread':>8} " + " ".join(f"{n:>3}" for n in taught.misread) + "   (by the base model)")
    for warning in taught.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"wrote {taught.path} in {taught.seconds:.2f} s: an adapted model for predict, camera, serve and evaluate")


@click.group(cls=Cli)
def main() -> None:
    """Read handwritten digits with a .tflite model: no TensorFlow needed."""


for _command in (predict, camera, bench, serve, page, teach):
    main.add_command(_command)
