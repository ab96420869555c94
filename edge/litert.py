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
from typing import Any

_SWAP = threading.Lock()  # one swap of fd 2 at a time: serve makes interpreters in worker threads
_LITERT_INFO = re.compile(rb"^INFO: \S")  # LiteRT's "INFO: <message>", not a logger's "INFO:     <message>"


def allocate(interpreter: Any) -> None:
    """`interpreter.allocate_tensors()`, LiteRT's INFO lines left out of stderr; its errors still raise."""
    with _SWAP, tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            interpreter.allocate_tensors()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True) if not _LITERT_INFO.match(line)]
            if kept:
                os.write(2, b"".join(kept))
