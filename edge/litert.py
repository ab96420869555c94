"""LiteRT's tensor allocation without its `INFO: Created TensorFlow Lite XNNPACK delegate for CPU.` line.

LiteRT's C++ logger prints that line on stderr the first time in a process that an interpreter allocates
its tensors (when it applies its default delegate, XNNPACK), and
ai-edge-litert offers no way to raise the logger's threshold: no Python API, no environment variable
(its minimal logger does not read TF_CPP_MIN_LOG_LEVEL) and no exported symbol to set. To a newcomer
the line looks like an error on every command. So tensors are allocated with the process's stderr
(file descriptor 2) pointed at a temporary file, and everything written there meanwhile is passed on
except LiteRT's INFO lines: its warnings and errors, and anything another thread said, still appear.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

_SWAP = threading.Lock()  # one swap of fd 2 at a time: serve makes interpreters in worker threads
_LITERT_INFO = re.compile(r"^INFO: \S")  # LiteRT's "INFO: <message>", not a logger's "INFO:     <message>"


@contextmanager
def filtered_stderr(keep: Callable[[list[str]], list[str]]) -> Iterator[None]:
    """Collect what anything in this process (C++ included) writes to stderr, and write back what `keep` keeps.

    A temporary file, not a pipe, holds it: a pipe nobody reads would block a writer once it is full.
    Also used by digitcnn/quiet.py for TensorFlow's start-up noise.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            sys.stderr.write("".join(keep(captured.read().decode(errors="replace").splitlines(keepends=True))))
            sys.stderr.flush()


def allocate(interpreter: Any) -> None:
    """`interpreter.allocate_tensors()`, LiteRT's INFO lines left out of stderr; its errors still raise."""
    with _SWAP, filtered_stderr(lambda lines: [line for line in lines if not _LITERT_INFO.match(line)]):
        interpreter.allocate_tensors()
