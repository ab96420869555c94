"""matplotlib without a display: figures become PNG bytes, written atomically and embedded in HTML."""

from __future__ import annotations

import io
from pathlib import Path

from edge.atomic import atomic_write


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display on a server or a Pi), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig, dpi: int = 100) -> bytes:
    """The figure as PNG bytes; the figure is closed so long reports do not pile figures up."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    return buffer.getvalue()


def write_png(fig, path: str | Path, dpi: int = 100) -> bytes:
    """Write the figure to `path` atomically and return its PNG bytes."""
    data = png(fig, dpi)
    with atomic_write(path) as f:
        f.write(data)
    return data
