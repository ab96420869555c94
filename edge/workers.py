"""Decoding and inference off the server's event loop: a few threads behind a short queue.

A photo takes tens of milliseconds to decode and read; on the event loop that would stall every
other request (the page, the runtime files) meanwhile. Each worker thread has its own LiteRT
interpreter, because one interpreter must never run two invokes at once. Places are counted from
before an upload is read, so the memory held by uploads is bounded too, and a request that finds
none free is refused at once rather than left waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

from edge.predict import read_digit
from edge.runner import DigitModel

WORKER_NICENESS = 10
"""How much lower a worker thread's CPU priority is than the event loop's."""


class Busy(Exception):
    """Every worker is busy and the queue is full: the caller answers 503 at once."""


def default_workers() -> int:
    """One worker per core this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _yield_to_the_loop() -> None:
    """Lower this worker thread's CPU priority, so that when the cores are all busy the event loop
    still runs at once: the page stays quick while images queue. On Linux, nice values are per
    thread; elsewhere this would slow the whole server, so it is left alone."""
    if sys.platform == "linux":
        os.nice(WORKER_NICENESS)


class Workers:
    """`workers` threads reading digits, with places for `queue` more requests waiting."""

    def __init__(self, model_path: str | Path, workers: int, queue: int):
        self.places = workers + queue
        self.taken = 0  # touched on the event loop only
        self._model_path = model_path
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="predict", initializer=_yield_to_the_loop)

    @contextlib.contextmanager
    def place(self) -> Iterator[None]:
        """Hold a place for one request; raises Busy at once when none is free."""
        if self.taken >= self.places:
            raise Busy
        self.taken += 1
        try:
            yield
        finally:
            self.taken -= 1

    async def read_digit(self, name: str, data: bytes) -> dict:
        """`predict --json`'s answer for an image's bytes, computed in a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._read, name, data)

    def _read(self, name: str, data: bytes) -> dict:
        model = getattr(self._local, "model", None)
        if model is None:  # this thread's own interpreter, one thread each: the workers share the cores
            model = self._local.model = DigitModel(self._model_path, threads=1)
        return read_digit(model, data, name)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
