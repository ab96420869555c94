"""Image files in, one JSON-ready answer per file out as soon as it is ready; one bad file never stops the others."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from edge.errors import UserError
from edge.preprocess import SUFFIXES, NoDigit, load_image, to_mnist
from edge.runner import NO_INK, DigitModel


def expand_inputs(inputs: Iterable[str]) -> list[Path | dict]:
    """Files as given, folders as their image files (sorted); a missing path stays, to be reported.

    A folder that cannot be listed (permissions) becomes its error answer, in its place.
    """
    files: list[Path | dict] = []
    for name in inputs:
        path = Path(name)
        try:
            files += list_folder(path) if _is_dir(path) else [path]
        except UserError as e:
            files.append({"file": name, "error": str(e)})
    return files


def list_folder(folder: Path) -> list[Path]:
    """The image files in a folder, sorted; an OS error is a UserError naming the folder."""
    try:
        return sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    except OSError as e:
        raise UserError(f"{folder}: cannot read folder ({e.strerror or e})") from None


def _is_dir(path: Path) -> bool:
    """False also when the path cannot be looked at: reading it as a file then says why."""
    try:
        return path.is_dir()
    except OSError:
        return False


def predict_files(model: DigitModel, files: Iterable[Path | dict], *, threshold: float | None = None,
                  top_k: int = 3, multi: bool = False) -> Iterator[dict]:
    """Yield `{"file", "digit", "confidence", "top"}` (or `{"file", "error"}`, the error naming the file) per file,
    in order.

    Each answer is yielded as soon as its image is read, so `predict DIR | head -1` waits for one
    image and Ctrl-C loses nothing already finished. An exception nobody foresaw (a MemoryError, a
    Pillow bug) becomes that image's error line, naming its type; the other images are still read.
    `threshold` None is the model's own (edge/confidence.py).
    """
    read = _read_number if multi else read_digit
    for file in files:
        if isinstance(file, dict):  # an input expand_inputs could not list
            yield file
            continue
        name = str(file)
        try:
            answer = read(model, file, name, threshold, top_k)
        except Exception as e:  # noqa: BLE001  one image's failure is that image's answer
            answer = {"file": name, "error": unexpected(name, e)}
        yield answer


def unexpected(name: str, error: BaseException) -> str:
    """The one-line error for an exception that is not a UserError, naming its type."""
    detail = " ".join(str(error).split())
    return f"{name}: unexpected {type(error).__name__}" + (f" ({detail})" if detail else "")


def read_digit(model: DigitModel, source: Path | bytes, name: str, threshold: float | None = None,
               top_k: int = 3) -> dict:
    """The answer `predict --json` gives for one image file, or for an image's bytes called `name`.

    No ink is an answer ("no digit"), a UserError is an error answer; any other exception is raised.
    """
    try:
        pixels = to_mnist(load_image(source, name=name))
    except NoDigit:
        return {"file": name, **NO_INK.as_json()}
    except UserError as e:
        return {"file": name, "error": str(e)}
    (reading,) = model.read(pixels[None], threshold, top_k)
    return {"file": name, **reading.as_json()}


def _read_number(model: DigitModel, file: Path, name: str, threshold: float | None, top_k: int) -> dict:
    from edge.multi import find_digits

    try:
        found = find_digits(load_image(file))
    except UserError as e:
        return {"file": name, "error": str(e)}
    readings = model.read(np.stack([d.pixels for d in found]), threshold, top_k) if found else []
    lines: dict[int, str] = {}
    digits = []
    for d, reading in zip(found, readings):
        lines[d.line] = lines.get(d.line, "") + ("?" if reading.digit is None else str(reading.digit))
        digits.append({**reading.as_json(), "box": list(d.box), "line": d.line})
    number = "\n".join(lines[k] for k in sorted(lines))
    best = min((r.confidence for r in readings), default=0.0)
    return {"file": name, "number": number, "digits": digits,
            "digit": None, "confidence": round(best, 4), "top": []}
