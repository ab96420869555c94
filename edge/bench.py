"""How fast a model answers on this machine: the numbers `cli.py bench` and bench/edge.py print."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from edge.preprocess import to_mnist
from edge.runner import DigitModel


def sample_digit(size: int = 28, dark_on_light: bool = False) -> Image.Image:
    """A drawn "7" on a square canvas: a stand-in image that needs no dataset."""
    image = Image.new("L", (size, size), 255 if dark_on_light else 0)
    s = size / 28
    ImageDraw.Draw(image).line([(7 * s, 6 * s), (21 * s, 6 * s), (12 * s, 23 * s)],
                               fill=0 if dark_on_light else 255, width=max(2, round(2.5 * s)))
    return image


def sample_frame(width: int = 640, height: int = 480) -> Image.Image:
    """A camera-like frame: a dark "7" written on grey paper, in the middle."""
    frame = Image.new("L", (width, height), 200)
    side = min(width, height) * 5 // 12
    frame.paste(30, ((width - side) // 2, (height - side) // 2), mask=sample_digit(side))
    return frame


def _timings(fn: Callable[[], object], seconds: float) -> np.ndarray:
    fn()  # warm-up: first-call allocation is not the steady state
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return np.array(times)


def bare_loop(model_path: str, threads: int | None, batch: np.ndarray, seconds: float) -> float:
    """Images/s of the plainest possible LiteRT loop on `batch`: the ceiling for our runner."""
    from ai_edge_litert.interpreter import Interpreter

    from edge.litert import allocate

    interpreter = Interpreter(model_path=model_path, num_threads=threads)
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, batch.shape)
    allocate(interpreter)

    def invoke():
        interpreter.set_tensor(index, batch)
        interpreter.invoke()

    return len(batch) / float(np.median(_timings(invoke, seconds)))


def benchmark(model_path: str, threads: int | None = None, seconds: float = 2.0) -> dict:
    """Latency at batch 1 (with preprocessing of a 28x28 and a 640x480 image) and batch-256 throughput."""
    from edge.metadata import model_input

    model = DigitModel(model_path, threads)
    pixels = to_mnist(sample_digit(28))
    small = Image.fromarray(pixels)  # a 28x28 MNIST-framed digit, as a 28x28 input is expected to be
    frame = sample_frame()
    batch = np.repeat(pixels[None], 256, axis=0)
    micro = lambda t: {f"p{q}": round(float(np.percentile(t, q)) * 1e6, 1) for q in (50, 90, 99)}  # noqa: E731
    result = {
        "model": model_path,
        "variant": model.meta["variant"],
        "threads": threads,
        "batch1_us": micro(_timings(lambda: model.read(to_mnist(small)[None]), seconds)),
        "preprocess_640x480_us": micro(_timings(lambda: to_mnist(frame), seconds)),
        "batch256_images_per_second": round(256 / float(np.median(_timings(lambda: model.probabilities(batch),
                                                                            seconds)))),
        "bare_litert_batch256_images_per_second": round(bare_loop(model_path, threads,
                                                                  model_input(batch, model.meta), seconds)),
    }
    result["runner_vs_bare"] = round(result["batch256_images_per_second"]
                                     / result["bare_litert_batch256_images_per_second"], 3)
    return result
