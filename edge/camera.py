"""Read digits from a live camera, a video file or a folder of images: capture, infer, draw, loop.

Capture runs in its own thread so that inference always takes the newest frame of a live camera
(older ones are dropped); files and folders are read frame by frame, none dropped. A frame that
fails to decode is reported, skipped and counted: one bad frame never ends the loop. Anything else
that stops capture (a camera unplugged, a driver error, no frame for STALL_SECONDS) ends the run
with one line and a non-zero exit, never a hang. A summary counts frames read, skipped, answered.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import numpy as np
from PIL import Image

from edge.errors import UserError
from edge.predict import list_folder, unexpected
from edge.preprocess import NoDigit, load_image, to_mnist
from edge.runner import NO_INK, DigitModel, Reading

OPEN_ATTEMPTS = 3
"""A live camera is tried this many times (a camera just plugged in, or still held by another program) ..."""
OPEN_WAIT_SECONDS = 1.0
"""... this long apart."""
STALL_SECONDS = 10.0
"""No frame for this long: the camera hangs, and the run ends instead of waiting forever."""
LOOKAHEAD = 30
"""After a frame of a video fails to decode, this many more are tried before calling it the end."""

_END = object()
T = TypeVar("T")


class CaptureFailed(UserError):
    """Capture cannot go on (not one bad frame): the run ends with this message and a non-zero exit."""


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


class Source:
    """Frames as RGB uint8 arrays; `live` sources drop stale frames, the others never do.

    `read()` returns None at the end of the stream and raises UserError for one bad frame (skipped);
    CaptureFailed, or any other exception, ends the run.
    """

    live = False
    name = "source"

    def read(self) -> np.ndarray | None:
        raise NotImplementedError

    def close(self) -> None:
        pass


def _open_live(open_once: Callable[[], T], name: str, warn: Callable[[str], None]) -> T:
    """`open_once()`, tried OPEN_ATTEMPTS times with a message between tries; then a UserError."""
    attempt = 1
    while True:
        try:
            return open_once()
        except Exception as e:  # noqa: BLE001  drivers raise anything; the last one is reported
            reason = str(e) if isinstance(e, UserError) else unexpected(name, e)
            if attempt == OPEN_ATTEMPTS:
                raise UserError(f"{reason} (tried {OPEN_ATTEMPTS} times)") from None
            warn(f"{reason}; trying again in {OPEN_WAIT_SECONDS:g} s ({attempt}/{OPEN_ATTEMPTS - 1})")
            time.sleep(OPEN_WAIT_SECONDS)
            attempt += 1


class OpenCVSource(Source):
    def __init__(self, spec: int | str, warn: Callable[[str], None] = _stderr):
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # our one-line messages replace FFmpeg's
        try:
            import cv2
        except ImportError:
            raise UserError('cameras and videos need OpenCV: pip install "digitcnn[camera]"') from None
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        self._cv2 = cv2
        self.live = isinstance(spec, int)
        self.name = f"camera {spec}" if self.live else f"video {spec}"
        self._capture = _open_live(lambda: self._open(spec), self.name, warn) if self.live else self._open(spec)
        self._held: np.ndarray | None = None  # a good frame found past bad ones ...
        self._bad = 0  # ... and how many bad ones are still to be reported before it

    def _open(self, spec: int | str):
        capture = self._cv2.VideoCapture(spec)
        if not capture.isOpened():
            capture.release()
            raise UserError(f"cannot open {self.name}")
        return capture

    def _rgb(self, frame: np.ndarray) -> np.ndarray:
        return self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2RGB)

    def _skipped(self) -> UserError:
        return UserError(f"{self.name}: a frame failed to decode; skipped")

    def read(self) -> np.ndarray | None:
        if self._bad:
            self._bad -= 1
            raise self._skipped()
        if self._held is not None:
            frame, self._held = self._held, None
            return frame
        ok, frame = self._capture.read()
        if ok:
            return self._rgb(frame)
        if self.live:
            raise CaptureFailed(f"{self.name} stopped sending frames (unplugged?)")
        # A file: its end, or a frame that failed to decode (OpenCV goes on with the next one).
        for later in range(1, LOOKAHEAD + 1):
            ok, frame = self._capture.read()
            if ok:
                self._held, self._bad = self._rgb(frame), later - 1
                raise self._skipped()
        return None

    def close(self) -> None:
        self._capture.release()


class PiCameraSource(Source):
    live = True
    name = "picamera2"

    def __init__(self, size: tuple[int, int] = (640, 480), warn: Callable[[str], None] = _stderr):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise UserError("picamera2 is missing: on Raspberry Pi OS, sudo apt install python3-picamera2") from None

        def start():
            camera = Picamera2()
            try:
                camera.configure(camera.create_preview_configuration(main={"size": size, "format": "RGB888"}))
                camera.start()
            except BaseException:
                camera.close()  # or the next try finds the camera busy
                raise
            return camera

        self._camera = _open_live(start, self.name, warn)

    def read(self) -> np.ndarray | None:
        return self._camera.capture_array()

    def close(self) -> None:
        self._camera.stop()


class FolderSource(Source):
    def __init__(self, folder: Path):
        self.name = f"folder {folder}"
        files = list_folder(folder)
        if not files:
            raise UserError(f"{folder}: no image files in this folder")
        self._files = iter(files)

    def read(self) -> np.ndarray | None:
        file = next(self._files, None)
        return None if file is None else np.asarray(load_image(file).convert("RGB"))


def open_source(spec: str, warn: Callable[[str], None] = _stderr) -> Source:
    """A device index ("0"), "picamera2", a folder of images, or a video file; `warn` hears about retries."""
    if spec.isascii() and spec.isdigit():  # not "²", which isdigit() too
        return OpenCVSource(int(spec), warn)
    if spec == "picamera2":
        return PiCameraSource(warn=warn)
    if not spec.strip():
        raise UserError("--source is empty: give a camera index, 'picamera2', a folder or a video file")
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path)
    if path.is_file():
        return OpenCVSource(str(path))
    raise UserError(f"{spec}: not a camera index, 'picamera2', a folder or a video file")


def frames(source: Source, stall_seconds: float = STALL_SECONDS) -> Iterator[np.ndarray | UserError]:
    """Frames from a capture thread: for a live source only the newest waits; a bad frame comes as
    its UserError. Raises CaptureFailed when capture cannot go on: whatever the thread raised, or no
    frame for `stall_seconds`."""
    slot: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(item: object) -> None:
        while not stop.is_set():
            if source.live:
                try:
                    slot.get_nowait()  # drop the stale frame nobody took yet
                except queue.Empty:
                    pass
            try:
                slot.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def capture() -> None:
        last: object = _END
        try:
            while not stop.is_set():
                try:
                    item = source.read()
                except CaptureFailed:
                    raise
                except UserError as e:
                    item = e
                if item is None:
                    break
                hand_over(item)
        except BaseException as e:  # noqa: BLE001  every failure must reach the main loop
            last = e if isinstance(e, CaptureFailed) else CaptureFailed(unexpected(source.name, e))
        hand_over(last)

    thread = threading.Thread(target=capture, name="capture", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = slot.get(timeout=stall_seconds)
            except queue.Empty:
                raise CaptureFailed(f"{source.name}: no frame for {stall_seconds:g} s (a stalled camera?)") from None
            if item is _END:
                return
            if isinstance(item, CaptureFailed):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=2)
        if not thread.is_alive():  # never close a source while read() may still run in the thread
            source.close()


@dataclass
class Summary:
    """What a run did: frames read from the source, skipped as bad, answered."""

    read: int = 0
    skipped: int = 0
    answered: int = 0

    def __str__(self) -> str:
        return f"frames: {self.read} read, {self.skipped} skipped, {self.answered} answered"


def centre_roi(frame: np.ndarray, fraction: float) -> tuple[int, int, int, int]:
    """The centred square (x, y, w, h) covering `fraction` of the frame's shorter side."""
    h, w = frame.shape[:2]
    side = max(1, int(min(h, w) * fraction))
    return (w - side) // 2, (h - side) // 2, side, side


def read_frame(model: DigitModel, frame: np.ndarray, roi: tuple[int, int, int, int],
               threshold: float | None) -> Reading:
    x, y, w, h = roi
    try:
        pixels = to_mnist(Image.fromarray(frame[y:y + h, x:x + w]))
    except NoDigit:
        return NO_INK
    return model.read(pixels[None], threshold)[0]


def run(model: DigitModel, source: Source, *, roi_fraction: float = 0.6, threshold: float | None = None,
        max_frames: int | None = None, show: bool = False, emit: Callable[[str], None] = print) -> Summary:
    """The camera loop (headless: one JSON line per frame); returns its summary.

    A bad frame is one error line; a capture failure is a CaptureFailed that ends with the summary.
    """
    draw = _Window() if show else None
    recent: deque[float] = deque(maxlen=30)
    summary = Summary()
    try:
        with contextlib.closing(frames(source)) as stream:
            for item in stream:
                summary.read += 1
                if not isinstance(item, UserError):
                    roi = centre_roi(item, roi_fraction)
                    try:
                        reading = read_frame(model, item, roi, threshold)
                    except UserError as e:
                        item = e
                    except Exception as e:  # noqa: BLE001  one frame's failure is that frame's line
                        item = UserError(unexpected(f"frame {summary.read}", e))
                if isinstance(item, UserError):
                    summary.skipped += 1
                    emit(json.dumps({"frame": summary.read, "error": str(item)}))
                else:
                    summary.answered += 1
                    recent.append(time.perf_counter())
                    fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
                    if draw:
                        if not draw.show(item, roi, reading, fps):
                            break
                    else:
                        emit(json.dumps({"frame": summary.read, **reading.as_json(), "fps": round(fps, 1)}))
                if max_frames and summary.read >= max_frames:
                    break
    except CaptureFailed as e:
        raise CaptureFailed(f"{e}; {summary}") from None
    except KeyboardInterrupt:
        pass
    finally:
        if draw:
            draw.close()
    return summary


class _Window:
    """An OpenCV window with the region of interest, the answer and the frame rate drawn on it."""

    def __init__(self):
        import cv2

        self.cv2 = cv2

    def show(self, frame: np.ndarray, roi: tuple[int, int, int, int], reading: Reading, fps: float) -> bool:
        cv2 = self.cv2
        image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        x, y, w, h = roi
        found = reading.digit is not None
        cv2.rectangle(image, (x, y), (x + w, y + h), (0, 200, 0) if found else (0, 0, 200), 2)
        label = f"{reading.digit} ({reading.confidence:.2f})" if found else "no digit"
        cv2.putText(image, label, (x, max(30, y - 10)), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 200, 0), 2)
        cv2.putText(image, f"{fps:.0f} FPS", (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
        cv2.imshow("digitcnn", image)
        return cv2.waitKey(1) & 0xFF not in (ord("q"), 27)

    def close(self) -> None:
        self.cv2.destroyAllWindows()
