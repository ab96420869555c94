"""Read digits from a live camera, a video file or a folder of images: capture, infer, draw, loop.

Capture runs in its own thread so that inference always takes the newest frame of a live camera
(older ones are dropped); files and folders are read frame by frame, none dropped. A frame that
fails to decode or to read is reported and skipped: one bad frame never ends the loop.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from edge.errors import UserError
from edge.predict import expand_inputs
from edge.preprocess import NoDigit, load_image, to_mnist
from edge.runner import NO_INK, DigitModel, Reading

_END = object()


class Source:
    """Frames as RGB uint8 arrays; `live` sources drop stale frames, the others never do."""

    live = False

    def read(self) -> np.ndarray | None:
        """The next frame, None at the end of the stream; a broken frame raises UserError."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class OpenCVSource(Source):
    def __init__(self, spec: int | str):
        try:
            import cv2
        except ImportError:
            raise UserError("cameras and videos need OpenCV: pip install '.[camera]'") from None
        self._cv2 = cv2
        self.live = isinstance(spec, int)
        self._capture = cv2.VideoCapture(spec)
        if not self._capture.isOpened():
            raise UserError(f"cannot open {'camera' if self.live else 'video'} {spec}")

    def read(self) -> np.ndarray | None:
        ok, frame = self._capture.read()
        return self._cv2.cvtColor(frame, self._cv2.COLOR_BGR2RGB) if ok else None

    def close(self) -> None:
        self._capture.release()


class PiCameraSource(Source):
    live = True

    def __init__(self, size: tuple[int, int] = (640, 480)):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise UserError("picamera2 is missing: on Raspberry Pi OS, sudo apt install python3-picamera2") from None
        self._camera = Picamera2()
        self._camera.configure(self._camera.create_preview_configuration(main={"size": size, "format": "RGB888"}))
        self._camera.start()

    def read(self) -> np.ndarray | None:
        return self._camera.capture_array()

    def close(self) -> None:
        self._camera.stop()


class FolderSource(Source):
    def __init__(self, folder: Path):
        self._files = iter(expand_inputs((str(folder),)))

    def read(self) -> np.ndarray | None:
        file = next(self._files, None)
        return None if file is None else np.asarray(load_image(file).convert("RGB"))


def open_source(spec: str) -> Source:
    """A device index ("0"), "picamera2", a folder of images, or a video file."""
    if spec.isdigit():
        return OpenCVSource(int(spec))
    if spec == "picamera2":
        return PiCameraSource()
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path)
    if path.is_file():
        return OpenCVSource(str(path))
    raise UserError(f"{spec}: not a camera index, 'picamera2', a folder or a video file")


def frames(source: Source) -> Iterator[np.ndarray | UserError]:
    """Frames from a capture thread: for a live source only the newest waits; errors come as items."""
    slot: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def capture() -> None:
        while not stop.is_set():
            try:
                item = source.read()
            except UserError as e:
                item = e
            if item is None:
                item = _END
            if source.live and item is not _END:
                try:
                    slot.get_nowait()  # drop the stale frame nobody took yet
                except queue.Empty:
                    pass
                slot.put(item)
            else:
                while not stop.is_set():
                    try:
                        slot.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
            if item is _END:
                return

    thread = threading.Thread(target=capture, name="capture", daemon=True)
    thread.start()
    try:
        while True:
            item = slot.get()
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=2)
        source.close()


def centre_roi(frame: np.ndarray, fraction: float) -> tuple[int, int, int, int]:
    """The centred square (x, y, w, h) covering `fraction` of the frame's shorter side."""
    h, w = frame.shape[:2]
    side = max(1, int(min(h, w) * fraction))
    return (w - side) // 2, (h - side) // 2, side, side


def read_frame(model: DigitModel, frame: np.ndarray, roi: tuple[int, int, int, int], threshold: float) -> Reading:
    x, y, w, h = roi
    try:
        pixels = to_mnist(Image.fromarray(frame[y:y + h, x:x + w]))
    except NoDigit:
        return NO_INK
    return model.read(pixels[None], threshold)[0]


def run(model: DigitModel, source: Source, *, roi_fraction: float = 0.6, threshold: float = 0.5,
        max_frames: int | None = None, show: bool = False, emit: Callable[[str], None] = print) -> int:
    """The camera loop; returns the number of frames read. Headless: one JSON line per frame."""
    draw = _Window() if show else None
    recent: deque[float] = deque(maxlen=30)
    count = 0
    try:
        for item in frames(source):
            count += 1
            if isinstance(item, UserError):
                emit(json.dumps({"frame": count, "error": str(item)}))
            else:
                roi = centre_roi(item, roi_fraction)
                reading = read_frame(model, item, roi, threshold)
                recent.append(time.perf_counter())
                fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 else 0.0
                if draw:
                    if not draw.show(item, roi, reading, fps):
                        break
                else:
                    emit(json.dumps({"frame": count, **reading.as_json(), "fps": round(fps, 1)}))
            if max_frames and count >= max_frames:
                break
    except KeyboardInterrupt:
        pass
    finally:
        if draw:
            draw.close()
    return count


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
