"""Which optional extra a command needs, so that one missing says what to install in one line.

`pip install digitcnn` alone brings only click and numpy; every command names its extras with
`@needs(...)`, checked before anything is imported (finding a module does not import it).
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Callable

from edge.errors import UserError

MODULES = {
    "edge": {"PIL": "Pillow", "ai_edge_litert": "ai-edge-litert"},
    "serve": {"starlette": "Starlette", "uvicorn": "uvicorn", "python_multipart": "python-multipart"},
    "train": {"tensorflow": "TensorFlow", "keras": "Keras", "matplotlib": "matplotlib"},
}
"""Per extra of pyproject.toml: the modules it provides that the commands import, and their names."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a finder that refuses the module (the tests' TensorFlow blocker) means "not here"
        return False


def require(extra: str) -> None:
    """A UserError naming what is missing and the pip command that installs it, unless all is there."""
    missing = [name for module, name in MODULES[extra].items() if not _installed(module)]
    if missing:
        raise UserError(f'this command needs {", ".join(missing)}: pip install "digitcnn[{extra}]"')


def needs(*extras: str) -> Callable[[Callable], Callable]:
    """Decorate a click command's function: check `extras` before it runs."""

    def decorate(command: Callable) -> Callable:
        @functools.wraps(command)
        def checked(*args, **kwargs):
            for extra in extras:
                require(extra)
            return command(*args, **kwargs)

        return checked

    return decorate
