"""Benchmark the installed wheel: its size, and `digitcnn predict digit.png` against a bare LiteRT script.

    python bench/wheel.py [--wheel dist/digitcnn-*.whl] [--runs 20]

Builds the wheel (unless given one), installs it with the `edge` extra into a fresh virtualenv, and
times two whole processes, each answering the same 28x28 PNG with the same shipped model: the
installed `digitcnn predict`, and a script that only loads the model with ai-edge-litert, feeds it
the PNG's pixels and prints the top class. They run in turn (A B, then B A, ...), so that a machine
whose speed drifts slows both alike. Prints one JSON line: medians of wall and CPU seconds (user +
sys of the child), the median of the per-pair ratios, and the wheel's size.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.bench import sample_digit  # noqa: E402

BARE = """
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image

interpreter = Interpreter(model_path=sys.argv[1])
interpreter.allocate_tensors()
image = interpreter.get_input_details()[0]
interpreter.set_tensor(image["index"], np.asarray(Image.open(sys.argv[2]).convert("L")).reshape(image["shape"]))
interpreter.invoke()
scores = next(o for o in interpreter.get_output_details() if list(o["shape"]) == [1, 10])
print(int(np.argmax(interpreter.get_tensor(scores["index"]))))
"""


def _run(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _answer(cmd: list[str], cwd: Path) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=cwd).stdout.split()[0]


def _install(wheel: Path, venv: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[edge]"], check=True)
    return venv / "bin"


@click.command()
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False), help="A built wheel (default: build one).")
@click.option("--runs", type=click.IntRange(min=2), default=20, show_default=True, help="Pairs timed.")
def main(wheel: str | None, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if wheel is None:
            subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "--wheel-dir",
                            str(work)], check=True)
            wheel = str(next(work.glob("digitcnn-*.whl")))
        bin_dir = _install(Path(wheel), work / "venv")
        model = subprocess.run([str(bin_dir / "python"), "-c", "from edge.shipped import SHIPPED_MODEL as m; print(m)"],
                               check=True, capture_output=True, text=True, cwd=work).stdout.strip()
        png = work / "digit.png"
        sample_digit(28).save(png)
        (work / "bare.py").write_text(BARE)
        commands = {"predict": [str(bin_dir / "digitcnn"), "predict", str(png)],
                    "bare": [str(bin_dir / "python"), str(work / "bare.py"), model, str(png)]}
        answers = {name: _answer(cmd, work) for name, cmd in commands.items()}  # also the warm-up
        if len(set(answers.values())) != 1:
            raise click.ClickException(f"the two answered differently: {answers}")
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for i in range(runs):
            for name in ("predict", "bare") if i % 2 == 0 else ("bare", "predict"):
                times[name].append(_run(commands[name], work))
        wall = {name: [t[0] for t in ts] for name, ts in times.items()}
        cpu = {name: [t[1] for t in ts] for name, ts in times.items()}
        result = {
            "bench": "wheel",
            "wheel_bytes": Path(wheel).stat().st_size,
            "digit": int(answers["predict"]),
            "runs": runs,
            **{f"{name}_wall_s": round(statistics.median(wall[name]), 3) for name in commands},
            **{f"{name}_cpu_s": round(statistics.median(cpu[name]), 3) for name in commands},
            "ratio_wall": round(statistics.median(a / b for a, b in zip(wall["predict"], wall["bare"])), 3),
            "ratio_cpu": round(statistics.median(a / b for a, b in zip(cpu["predict"], cpu["bare"])), 3),
        }
    click.echo(json.dumps(result))


if __name__ == "__main__":
    main()
