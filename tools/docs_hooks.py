"""MkDocs hook (mkdocs.yml `hooks`): the command-line reference (docs/cli.md) documents this checkout's cli.py.

`mkdocs build` runs as a console script, whose import path starts at its bin folder, not at the
repository: without this, mkdocs-click would import whichever cli an install put on the path, or none.
(MkDocs restores sys.path after loading a hook, so the path is set when the build starts.)
"""

import sys
from pathlib import Path


def on_config(config):
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return config
