"""Which optional extra brings a module, so that a command missing one says what to install in one line.

`pip install digitcnn` alone brings click and numpy; each command imports what it needs when it runs,
and a module that is not installed becomes `... is not installed: pip install "digitcnn[EXTRA]"`.
"""

from __future__ import annotations

EXTRAS = {
    "PIL": "edge", "ai_edge_litert": "edge",
    "starlette": "serve", "uvicorn": "serve", "python_multipart": "serve", "multipart": "serve",
    "cv2": "camera",
    "tensorflow": "train", "keras": "train", "matplotlib": "train", "tensorboard": "train",
}
"""Top-level modules the commands import, by the extra of pyproject.toml that installs them."""


def install_hint(error: ModuleNotFoundError) -> str | None:
    """`<module> is not installed: pip install "digitcnn[<extra>]"`, or None for a module no extra brings."""
    module = (error.name or "").split(".")[0]
    if module not in EXTRAS:
        return None
    return f'{module} is not installed: pip install "digitcnn[{EXTRAS[module]}]"'
