"""Import TensorFlow without the start-up noise it prints on a machine without a GPU.

TF_CPP_MIN_LOG_LEVEL=2 hides TensorFlow's info and warning lines, but not those its C++ libraries log
before absl's logging is initialised: absl then writes every message to stderr, so each command that
imported TensorFlow began with five lines about CUDA drivers this machine does not have. Those lines
are filtered here, at the file descriptor, while TensorFlow loads and probes for GPUs; everything
else (errors, Python warnings) passes through. A user who sets TF_CPP_MIN_LOG_LEVEL sees it all.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

LEVEL = "TF_CPP_MIN_LOG_LEVEL"
BELOW_ERROR = re.compile(r"[IW]\d{4} ")  # absl's prefix of an info or warning line: I1203 12:00:00.000 ...
NOT_INITIALISED = "All log messages before absl::InitializeLog() is called are written to STDERR"
NO_DRIVER = "Could not find cuda drivers on your machine"
NO_CUINIT = "failed call to cuInit"


def noise_dropped(lines: list[str]) -> list[str]:
    """The lines TF_CPP_MIN_LOG_LEVEL=2 would have hidden had absl been initialised (info and warnings), and
    cuInit's failure when the CUDA stub found no driver to call; every other line as it was."""
    no_driver = any(NO_DRIVER in line for line in lines)
    return [line for line in lines
            if not (BELOW_ERROR.match(line) or NOT_INITIALISED in line or (no_driver and NO_CUINIT in line))]


@contextmanager
def filtered_stderr(keep: Callable[[list[str]], list[str]]) -> Iterator[None]:
    """Collect what anything in this process (C++ included) writes to stderr, and write back what `keep` keeps.

    A temporary file, not a pipe, holds it: a pipe nobody reads would block a writer once it is full.
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


def import_tensorflow() -> None:
    """Import TensorFlow and let it look for GPUs (where the CUDA noise comes from) with that noise dropped."""
    if "tensorflow" in sys.modules:
        return
    if LEVEL in os.environ:  # the user chose what to see
        import tensorflow  # noqa: F401
        return
    os.environ[LEVEL] = "2"
    with filtered_stderr(noise_dropped):
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")
