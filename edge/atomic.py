"""Write files so that a crash never leaves a truncated one behind."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

from edge.errors import UserError


def check_target(path: Path) -> None:
    """UserError unless `path` is new or a regular file: renaming over a device, a pipe or a symlink
    would swap it for a plain file (`--out /dev/null` run as root). Writers of several files check
    them all before writing any."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UserError(f"{path}: exists and is not a regular file; give a file name to write")


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Yield a temporary file beside `path`; rename it over `path` only if the block succeeds.

    Only a regular file is ever replaced (`check_target`), and it keeps its permissions."""
    path = Path(path)
    check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise UserError(f"{path}: cannot write there ({e.strerror})") from None
    umask = os.umask(0)
    os.umask(umask)
    # mkstemp makes 0600: a new file should look like any other, a replaced one as it was.
    os.chmod(tmp, stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o666 & ~umask)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def refuse_overwriting(out: Path, inputs: dict[str, Path]) -> None:
    """UserError if `out` is one of the files the command reads (`inputs`: what each is, by path), so that
    an output given by mistake never replaces what it was made from."""
    for what, path in inputs.items():
        if out.is_file() and path.is_file() and out.samefile(path):
            raise UserError(f"{out}: is {what}; write to another file")


def write_json(path: str | Path, obj: Any) -> None:
    with atomic_write(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path for libraries that insist on writing by name (Keras, matplotlib)."""
    path = Path(path)
    check_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
