"""MkDocs hook (mkdocs.yml `hooks`): the command-line reference (docs/cli.md) documents this checkout's cli.py.

`mkdocs build` runs as a console script, whose import path starts at its bin folder, not at the
repository: without this, mkdocs-click would import whichever cli an install put on the path, or none.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
