"""Image files in, one JSON-ready answer per file out; one bad file never stops the others."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from edge.errors import UserError
from edge.preprocess import NoDigit, load_image, to_mnist
from edge.runner import NO_INK, DigitModel

CHUNK = 256  # files preprocessed, then read by the model in one batch
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm"}


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Files as given, folders as their image files (sorted); a missing path stays, to be reported."""
    files: list[Path] = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        else:
            files.append(path)
    return files


def predict_files(model: DigitModel, files: Iterable[Path], *, threshold: float = 0.5, top_k: int = 3,
                  multi: bool = False) -> Iterator[dict]:
    """Yield `{"file", "digit", "confidence", "top"}` (or `{"file", "error"}`) per file, in order."""
    files = list(files)
    for start in range(0, len(files), CHUNK):
        chunk = files[start:start + CHUNK]
        if multi:
            yield from (_read_number(model, f, threshold, top_k) for f in chunk)
        else:
            yield from _read_digits(model, [(str(f), f) for f in chunk], threshold, top_k)


def predict_upload(model: DigitModel, name: str, data: bytes, *, threshold: float = 0.5, top_k: int = 3) -> dict:
    """The answer `predict --json` gives for a file, for an image's bytes (decoded in memory)."""
    (answer,) = _read_digits(model, [(name, data)], threshold, top_k)
    return answer


def _read_digits(model: DigitModel, sources: list[tuple[str, Path | bytes]], threshold: float,
                 top_k: int) -> list[dict]:
    """One answer per (name, file or bytes): framed digits are read by the model in one batch."""
    framed: list[np.ndarray | dict] = [_frame(source, name) for name, source in sources]
    batch = [a for a in framed if isinstance(a, np.ndarray)]
    readings = iter(model.read(np.stack(batch), threshold, top_k) if batch else [])
    answers = []
    for (name, _), item in zip(sources, framed):
        reading = next(readings) if isinstance(item, np.ndarray) else item
        answers.append({"file": name, **(reading if isinstance(reading, dict) else reading.as_json())})
    return answers


def _frame(source: Path | bytes, name: str) -> np.ndarray | dict:
    """The MNIST-framed digit of one image, or the answer that replaces it (no ink, or an error)."""
    try:
        return to_mnist(load_image(source, name=name))
    except NoDigit:
        return NO_INK.as_json()
    except UserError as e:
        return {"error": str(e)}


def _read_number(model: DigitModel, file: Path, threshold: float, top_k: int) -> dict:
    from edge.multi import find_digits

    try:
        found = find_digits(load_image(file))
    except UserError as e:
        return {"file": str(file), "error": str(e)}
    readings = model.read(np.stack([d.pixels for d in found]), threshold, top_k) if found else []
    lines: dict[int, str] = {}
    digits = []
    for d, reading in zip(found, readings):
        lines[d.line] = lines.get(d.line, "") + ("?" if reading.digit is None else str(reading.digit))
        digits.append({**reading.as_json(), "box": list(d.box), "line": d.line})
    number = "\n".join(lines[k] for k in sorted(lines))
    best = min((r.confidence for r in readings), default=0.0)
    return {"file": str(file), "number": number, "digits": digits,
            "digit": None, "confidence": round(best, 4), "top": []}
