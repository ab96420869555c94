"""Import TensorFlow without the start-up noise it prints on a machine without a GPU.

TF_CPP_MIN_LOG_LEVEL=2 hides TensorFlow's info and warning lines, but not those its C++ libraries log
before absl's logging is initialised: absl then writes every message to stderr, so each command that
imported TensorFlow began with five lines about CUDA drivers this machine does not have. Those lines
are filtered here, at the file descriptor, while TensorFlow loads and probes for GPUs; everything
else (errors, Python warnings) passes through. A user who sets TF_CPP_MIN_LOG_LEVEL=0 sees it all; any
other level the user sets hides those early lines too, as it hides the same lines once absl is initialised.
"""

from __future__ import annotations

import os
import re
import sys

from edge.litert import filtered_stderr

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


def import_tensorflow() -> None:
    """Import TensorFlow and let it look for GPUs (where the CUDA noise comes from) with that noise dropped."""
    if "tensorflow" in sys.modules:
        return
    if os.environ.setdefault(LEVEL, "2") == "0":  # the user asked to see everything
        import tensorflow  # noqa: F401
        return
    with filtered_stderr(noise_dropped):
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")
