"""Latency per image in ai-edge-litert: the number that matters on a Pi or a phone."""

from __future__ import annotations

import statistics
import time

import numpy as np

from export.verify import load_interpreter


def latency_per_image(model: bytes, inputs: np.ndarray, batch: int = 1, threads: int = 1,
                      min_seconds: float = 0.3) -> float:
    """Median seconds per image over repeated invokes of one batch of `inputs`, after a warm-up.

    Repeats for at least `min_seconds`, and the median, keep a busy machine's spikes out.
    """
    interpreter = load_interpreter(model, batch, threads)
    chunk = np.resize(inputs, (batch, *inputs.shape[1:]))  # repeats images if there are fewer than batch
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], chunk)
    interpreter.invoke()
    times, started = [], time.perf_counter()
    while len(times) < 5 or time.perf_counter() - started < min_seconds:
        tick = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - tick)
    return statistics.median(times) / batch
