"""Benchmark the edge runner on this machine; prints one JSON line.

    python bench/edge.py [--model runs/lenet-plus/model_int8.tflite] [--threads 1]

Cold start of `cli.py predict` as a whole process (and of the same answer through Keras), latency at
batch 1 with preprocessing, batch-256 throughput beside a bare LiteRT loop, 640x480 preprocessing,
and the headless camera loop on a generated 640x480 video.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge.bench import benchmark, sample_digit, sample_frame  # noqa: E402

KERAS_PREDICT = """
import sys, json, numpy as np, keras
import digitcnn.model  # registers lenet-plus's layers
from edge.preprocess import load_image, to_mnist
run = sys.argv[1]
scaling = json.load(open(run + "/metrics.json"))["pixel_scaling"]
model = keras.saving.load_model(run + "/model.keras")
x = to_mnist(load_image(sys.argv[2]))[None, ..., None] * scaling["scale"] + scaling["offset"]
print(int(np.argmax(model.predict(x, verbose=0))))
"""


def _seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _camera_fps(model: str, threads: int | None, frames: int = 300) -> float:
    import cv2

    from edge.camera import open_source, run
    from edge.runner import DigitModel

    with tempfile.TemporaryDirectory() as tmp:
        video = str(Path(tmp) / "digits.avi")
        writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
        frame = np.asarray(sample_frame().convert("RGB"))[..., ::-1]  # OpenCV writes BGR
        for _ in range(frames):
            writer.write(frame)
        writer.release()
        digit_model = DigitModel(model, threads)
        t0 = time.perf_counter()
        count = run(digit_model, open_source(video), emit=lambda line: None).read
        return count / (time.perf_counter() - t0)


@click.command()
@click.option("--model", default=str(ROOT / "runs/lenet-plus/model_int8.tflite"), show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--runs", type=int, default=5, show_default=True, help="Cold starts to take the median of.")
def main(model: str, threads: int, runs: int) -> None:
    result = {"bench": "edge", **benchmark(model, threads)}
    with tempfile.TemporaryDirectory() as tmp:
        png = str(Path(tmp) / "digit.png")
        sample_digit(200, dark_on_light=True).save(png)
        result["cold_start_predict_s"] = round(_seconds([sys.executable, "cli.py", "predict", model, png], runs), 3)
        run_dir = str(Path(model).parent)
        if (Path(run_dir) / "model.keras").exists():
            keras_s = _seconds([sys.executable, "-c", KERAS_PREDICT, run_dir, png], max(1, runs // 2))
            result["cold_start_keras_s"] = round(keras_s, 3)
            result["cold_start_speedup"] = round(keras_s / result["cold_start_predict_s"], 1)
    result["camera_640x480_fps"] = round(_camera_fps(model, threads))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
