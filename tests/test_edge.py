"""The edge runner as a user meets it: predict, --multi, the camera loop, bad input, no TensorFlow."""

from __future__ import annotations

import io
import json
import os
import select
import stat
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from conftest import BLOCK_TENSORFLOW, ROOT, messages, run_cli
from edge import camera, predict
from edge import metadata as md
from edge.atomic import atomic_path, atomic_write
from edge.cli import main as edge_main
from edge.errors import UserError
from edge.predict import predict_files
from edge.runner import DigitModel
from edge.shipped import SHIPPED_MODEL

N = 60  # MNIST test images per check: enough to tell a working runner from a broken one


@pytest.fixture(scope="session")
def loaded_model(int8_model):
    return DigitModel(int8_model)


@pytest.fixture(scope="session")
def mnist_test(mnist_npz):
    with np.load(mnist_npz) as d:
        return d["x_test"][:N], d["y_test"][:N]


@pytest.fixture(scope="session")
def png_folders(tmp_path_factory, mnist_test):
    """The same MNIST test digits as PNG files, white on black and black on white."""
    x, _ = mnist_test
    folders = {}
    for name, flip in (("white-on-black", False), ("black-on-white", True)):
        folder = tmp_path_factory.mktemp(name)
        for i, image in enumerate(x):
            Image.fromarray(255 - image if flip else image).save(folder / f"{i:03d}.png")
        folders[name] = folder
    return folders


def _answers(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def _patched(patch: str, *args: str) -> list[str]:
    """The argv that runs the edge CLI after `patch` (Python source) has replaced part of it."""
    return [sys.executable, "-c", f"{patch}\nfrom edge.cli import main\nmain()", *args]


def run_patched(patch: str, *args: str) -> subprocess.CompletedProcess:
    """The edge CLI in a subprocess after `patch`; a hang fails the test after 120 s instead of hanging it."""
    return subprocess.run(_patched(patch, *args), capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_mnist_pngs_in_both_polarities(int8_model, png_folders, mnist_test):
    _, y = mnist_test
    digits = {}
    for name, folder in png_folders.items():
        answers = _answers(run_cli("predict", str(int8_model), str(folder), "--json", "--threshold", "0").stdout)
        assert [a["file"] for a in answers] == sorted(str(p) for p in folder.iterdir())
        digits[name] = np.array([a["digit"] for a in answers])
        assert (digits[name] == y).mean() >= 0.85, name
    assert (digits["white-on-black"] == digits["black-on-white"]).mean() >= 0.95


def test_json_answer_schema(int8_model, png_folders):
    (answer,) = _answers(run_cli("predict", str(int8_model), str(png_folders["white-on-black"] / "000.png"),
                                 "--json", "--top", "4").stdout)
    assert set(answer) == {"file", "digit", "confidence", "top"}
    assert answer["digit"] in range(10) and 0.5 <= answer["confidence"] <= 1
    assert len(answer["top"]) == 4 and answer["top"][0] == [answer["digit"], answer["confidence"]]
    assert [p for _, p in answer["top"]] == sorted((p for _, p in answer["top"]), reverse=True)


def test_plain_output_for_one_file(int8_model, png_folders, mnist_test):
    out = run_cli("predict", str(int8_model), str(png_folders["white-on-black"] / "000.png")).stdout
    digit, confidence = out.split()
    assert int(digit) == mnist_test[1][0] and 0.5 <= float(confidence.strip("()")) <= 1


def photo(digit: np.ndarray, rng: np.random.Generator, size: int = 400) -> Image.Image:
    """A phone-photo-like rendering: dark ink on grey paper, uneven light, blur, noise, small tilt."""
    side = int(size * rng.uniform(0.3, 0.6))
    ink = Image.fromarray(digit).resize((side, side), Image.BICUBIC).rotate(rng.uniform(-8, 8), Image.BICUBIC)
    ink = ink.filter(ImageFilter.MaxFilter(3) if rng.random() < 0.5 else ImageFilter.MinFilter(1))
    canvas = np.zeros((size, size), np.float32)
    top, left = rng.integers(0, size - side, 2)
    canvas[top:top + side, left:left + side] = np.asarray(ink, np.float32) / 255
    light = np.linspace(rng.uniform(150, 190), rng.uniform(210, 240), size)[None, :]
    paper = light * (1 - 0.8 * canvas) + rng.normal(0, 6, (size, size))
    return Image.fromarray(np.clip(paper, 0, 255).astype(np.uint8)).convert("RGB")


def test_photo_like_renderings(loaded_model, mnist_test, tmp_path):
    x, y = mnist_test
    rng = np.random.default_rng(0)
    files = []
    for i, image in enumerate(x[:30]):
        files.append(tmp_path / f"{i}.jpg")
        photo(image, rng).save(files[-1], quality=85)
    answers = list(predict_files(loaded_model, files, threshold=0))
    assert np.mean([a["digit"] for a in answers] == y[:30]) >= 0.8


def _strip(digits: list[np.ndarray], gap: int = 10) -> Image.Image:
    """Digits written side by side, black on white, as on a sheet of paper."""
    width = sum(d.shape[1] for d in digits) + gap * (len(digits) + 1)
    canvas = np.zeros((48, width), np.uint8)
    x = gap
    for d in digits:
        canvas[10:38, x:x + 28] = np.maximum(canvas[10:38, x:x + 28], d)
        x += 28 + gap
    return Image.fromarray(255 - canvas).resize((width * 4, 48 * 4), Image.BICUBIC)


def _well_read(model: DigitModel, x: np.ndarray, y: np.ndarray, n: int) -> list[int]:
    """Digits the model reads right alone, so a test is about splitting or capture, not the model."""
    return [i for i, r in enumerate(model.read(x)) if r.digit == y[i] and r.confidence > 0.9][:n]


def test_multi_reads_a_number_in_lines(int8_model, loaded_model, mnist_test, tmp_path):
    x, y = mnist_test
    right = _well_read(loaded_model, x, y, 7)
    first, second = right[:4], right[4:7]
    lines = np.vstack([np.asarray(_strip([x[i] for i in first])),
                       np.pad(np.asarray(_strip([x[i] for i in second])), ((0, 0), (0, 38 * 4)),
                              constant_values=255)])
    Image.fromarray(lines).save(tmp_path / "number.png")
    (answer,) = _answers(run_cli("predict", str(int8_model), str(tmp_path / "number.png"), "--multi",
                                 "--json").stdout)
    expected = "".join(str(y[i]) for i in first) + "\n" + "".join(str(y[i]) for i in second)
    assert answer["number"] == expected
    assert len(answer["digits"]) == 7 and all(len(d["box"]) == 4 for d in answer["digits"])
    xs = [d["box"][0] for d in answer["digits"][:4]]
    assert xs == sorted(xs)


def test_blank_and_noise_are_no_digit(int8_model, tmp_path):
    rng = np.random.default_rng(1)
    Image.new("L", (200, 200), 230).save(tmp_path / "blank.png")
    Image.fromarray(rng.normal(200, 8, (200, 200)).clip(0, 255).astype(np.uint8)).save(tmp_path / "noise.png")
    answers = _answers(run_cli("predict", str(int8_model), str(tmp_path), "--json").stdout)
    assert [(a["digit"], a["confidence"]) for a in answers] == [(None, 0.0), (None, 0.0)]


def test_bad_inputs_fail_alone_with_one_line_each(int8_model, png_folders, tmp_path):
    good = png_folders["white-on-black"] / "000.png"
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")  # 400 MP of nothing, a few KB on disk
    names = ["empty.png", "text.png", "cut.png", "bomb.png", "missing.png"]
    result = run_cli("predict", str(int8_model), *(str(tmp_path / n) for n in names), str(good), "--json",
                     check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    answers = _answers(result.stdout)
    assert [("error" in a) for a in answers] == [True] * 5 + [False]
    assert all("\n" not in a["error"] and a["file"] in a["error"] for a in answers[:5])


def test_bad_models_are_one_line_errors(tmp_path, png_folders):
    import tensorflow as tf

    image = str(png_folders["white-on-black"] / "000.png")
    (tmp_path / "junk.tflite").write_bytes(b"\0" * 1000)
    wide = tf.keras.Sequential([tf.keras.Input((32, 32, 1), batch_size=1), tf.keras.layers.Flatten(),
                                tf.keras.layers.Dense(10)])
    (tmp_path / "wide.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(wide).convert())
    for name, message in (("junk.tflite", "not a TFLite model"), ("wide.tflite", "is not a 28x28x1"),
                          ("missing.tflite", "no such model file")):
        result = run_cli("predict", str(tmp_path / name), image, check=False)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1





def _zipped(flatbuffer: bytes, name: str, payload: bytes) -> bytes:
    """The flatbuffer with a zip holding `payload` as `name` appended, as export appends its metadata."""
    buffer = io.BytesIO(flatbuffer)
    buffer.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buffer, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, payload)
    return buffer.getvalue()


def test_damaged_or_hostile_metadata_is_a_one_line_error(tmp_path):
    """Bytes changed anywhere in the embedded archive, metadata that unpacks to gigabytes, JSON nested
    too deeply for the parser: each is a UserError (or, by chance, still valid), never an exception."""
    model = SHIPPED_MODEL.read_bytes()
    flatbuffer = md.bare_flatbuffer(model)
    path = tmp_path / "model.tflite"
    rng = np.random.default_rng(0)
    outcomes = set()
    for _ in range(400):
        damaged = bytearray(model)
        for i in rng.integers(len(flatbuffer), len(model), rng.integers(1, 4)):
            damaged[i] = rng.integers(256)
        cut = rng.integers(len(flatbuffer), len(model)) if rng.random() < 0.2 else len(model)
        path.write_bytes(bytes(damaged[:cut]))
        try:
            md.load_metadata(path)
            outcomes.add("valid")
        except UserError as e:
            outcomes.add(str(e).split(" (")[0].replace(str(path), "MODEL"))
    assert "MODEL: embedded metadata.json is damaged" in outcomes, outcomes
    bomb = b'{"schema": "' + b" " * (md.MAX_METADATA_BYTES + 1) + b'"}'  # deflates to a few KB
    path.write_bytes(_zipped(flatbuffer, md.EMBEDDED_NAME, bomb))
    with pytest.raises(UserError, match=r"metadata.json unpacks to 1,048,5\d\d bytes, more than"):
        md.load_metadata(path)
    path.write_bytes(_zipped(flatbuffer, md.EMBEDDED_NAME, b"[" * 100_000))
    with pytest.raises(UserError, match="embedded metadata.json is not valid metadata .nested too deeply"):
        md.load_metadata(path)
    path.write_bytes(flatbuffer)
    (tmp_path / "model.json").write_text("[" * 100_000)
    with pytest.raises(UserError, match="model.json is not valid metadata .nested too deeply"):
        md.load_metadata(path)


def test_metadata_that_misdescribes_a_tensor_is_refused(tmp_path, png_folders):
    """Metadata edited after export (its sha256 still names the flatbuffer) would feed the model floats
    where it takes uint8, or read its scores at the wrong scale: the runner checks it against the tensors."""
    model = SHIPPED_MODEL.read_bytes()
    meta = md.load_metadata(SHIPPED_MODEL)
    floats = {"dtype": "float32", "scale": None, "zero_point": None}
    for tensor, change, said in (("input", floats, "input tensor is float32"),
                                 ("output", {"scale": 0.5}, "probabilities tensor is uint8 x 10 (scale 0.5)"),
                                 ("features", {"dtype": "int8"}, "features tensor is int8 x 64")):
        path = tmp_path / f"{tensor}.tflite"
        path.write_bytes(md.embed_metadata(model, {**meta, tensor: {**meta[tensor], **change}}))
        result = run_cli("predict", str(path), str(png_folders["white-on-black"] / "000.png"), check=False)
        assert result.returncode == 1 and messages(result.stderr) == [
            f"Error: {path}: its metadata says the {said}" + messages(result.stderr)[0].split(said)[1]]
        assert "re-export it" in result.stderr


@pytest.mark.parametrize("args", [["predict", "--threshold", "nan"], ["predict", "--threads", "100000"],
                                  ["bench", "--seconds", "inf"], ["camera", "--roi", "nan"],
                                  ["serve", "--workers", "100000"]])
def test_numbers_that_are_not_numbers_are_usage_errors(args):
    """nan passes every bound of a range and inf an open-ended one: both are refused, as are thread
    counts no board has (LiteRT crashed on 50,000)."""
    given = [*args, str(SHIPPED_MODEL), "x.png"][: len(args) + 1 + (args[0] == "predict")]
    result = run_cli(*given, timeout=60, check=False)  # if let through, camera and serve would run on
    assert result.returncode == 2 and ("not a finite number" in result.stderr or "not in the range" in result.stderr)


def test_a_model_that_fails_to_allocate_is_one_line(monkeypatch):
    """Damaged weights can pass every check and fail only when LiteRT prepares them (an XNNPACK zero
    point out of range, found by flipping bytes): simulated, as such a file is found only by chance."""
    from ai_edge_litert.interpreter import Interpreter

    def refuse(self):
        raise RuntimeError("unsupported zero-point value (-1476395008) in channel 36 of INT8 tensor 5")

    monkeypatch.setattr(Interpreter, "allocate_tensors", refuse)
    with pytest.raises(UserError, match=r"default_int8.tflite: not a usable TFLite model \(unsupported zero-point"):
        DigitModel(SHIPPED_MODEL)


def test_a_pipe_or_device_where_a_file_is_read_is_refused(tmp_path, png_folders):
    """A metadata sidecar or an MNIST file that is a pipe would be read forever, a device without end."""
    (tmp_path / "bare.tflite").write_bytes(md.bare_flatbuffer(SHIPPED_MODEL.read_bytes()))
    os.mkfifo(tmp_path / "bare.json")
    os.mkfifo(tmp_path / "mnist.npz")
    (tmp_path / "zero.tflite").write_bytes((tmp_path / "bare.tflite").read_bytes())
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    image = str(png_folders["white-on-black"] / "000.png")
    for args, message in ((["predict", str(tmp_path / "bare.tflite"), image], "bare.json: not a metadata file"),
                          (["predict", str(tmp_path / "zero.tflite"), image], "zero.json: not a metadata file"),
                          (["evaluate", "--data", str(tmp_path / "mnist.npz")], "mnist.npz: not a regular file")):
        result = run_cli(*args, timeout=60, check=False)
        assert result.returncode == 1 and message in messages(result.stderr)[-1], result.stderr


def test_seeds_and_epochs_out_of_range_are_usage_errors(tmp_path):
    for option, value in (("--seed", "-1"), ("--seed", str(2**32)), ("--epochs", "10000000")):
        result = run_cli("train", option, value, "--out", str(tmp_path / "run"), timeout=60, check=False)
        assert result.returncode == 2 and "is not in the range" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_replaced_file_keeps_its_permissions(tmp_path):
    private, new = tmp_path / "private.tflite", tmp_path / "new.tflite"
    private.write_bytes(b"old")
    private.chmod(0o600)
    for path in (private, new):
        with atomic_write(path) as f:
            f.write(b"new")
    assert private.read_bytes() == b"new" and stat.S_IMODE(private.stat().st_mode) == 0o600
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(new.stat().st_mode) == 0o666 & ~umask


def test_writing_by_name_refuses_a_pipe_too(tmp_path):
    """atomic_path (Keras and matplotlib write by name) checks its target as atomic_write does."""
    os.mkfifo(tmp_path / "model.keras")
    with pytest.raises(UserError, match="model.keras: exists and is not a regular file"):
        with atomic_path(tmp_path / "model.keras"):
            pass
    assert (tmp_path / "model.keras").is_fifo()


def test_a_full_disk_under_the_output_is_one_error_line(png_folders):
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, str(ROOT / "cli.py"), "predict", str(SHIPPED_MODEL),
                                 str(png_folders["white-on-black"] / "000.png")], stdout=full, stderr=subprocess.PIPE,
                                text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 1 and messages(result.stderr)[-1] == "Error: No space left on device"
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr


def test_a_camera_source_that_names_nothing_is_an_error(tmp_path):
    for source, message in (("", "--source is empty"), ("²", "not a camera index"),
                            (str(tmp_path), "no image files in this folder")):
        with pytest.raises(UserError, match=message):
            camera.open_source(source)


@pytest.mark.parametrize("entry", [["-m", "edge"], [str(ROOT / "cli.py")]], ids=["python-m-edge", "cli.py"])
def test_edge_commands_run_without_tensorflow(entry, int8_model, png_folders, mnist_test):
    import subprocess

    folder = png_folders["white-on-black"]
    args = [sys.executable, "-c", BLOCK_TENSORFLOW, *entry]
    predicted = subprocess.run([*args, "predict", str(int8_model), str(folder), "--json"],
                               capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert np.mean([a["digit"] for a in _answers(predicted.stdout)] == mnist_test[1]) >= 0.85
    camera = subprocess.run([*args, "camera", str(int8_model), "--source", str(folder), "--headless",
                             "--max-frames", "5"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert camera.returncode == 0 and len(camera.stdout.splitlines()) == 5, camera.stderr[-2000:]
    bench = subprocess.run([*args, "bench", str(int8_model), "--seconds", "0.2"],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert bench.returncode == 0 and json.loads(bench.stdout)["batch256_images_per_second"] > 0


def _write_video(path: Path, frames: list[np.ndarray]) -> Path:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def _digit_frames(x: np.ndarray, indices: list[int], repeat: int) -> list[np.ndarray]:
    """640x480 frames with each digit dark on light paper in the centre, each `repeat` times."""
    frames = []
    for i in indices:
        frame = np.full((480, 640, 3), 225, np.uint8)
        frame[140:340, 220:420] = 255 - np.asarray(Image.fromarray(x[i]).resize((200, 200)))[..., None]
        frames += [frame] * repeat
    return frames


def test_camera_loop_on_a_video_file(int8_model, loaded_model, mnist_test, tmp_path):
    x, y = mnist_test
    right = _well_read(loaded_model, x, y, 5)
    video = _write_video(tmp_path / "digits.avi", _digit_frames(x, right, 3))
    result = run_cli("camera", str(int8_model), "--source", str(video), "--headless")
    frames = _answers(result.stdout)
    assert len(frames) == 3 * len(right)  # a file: every frame read, none dropped
    assert [f["digit"] for f in frames] == [int(y[i]) for i in right for _ in range(3)]
    assert frames[0]["fps"] == 0 and all(f["fps"] > 0 for f in frames[1:])  # a rate once two frames are in
    assert messages(result.stderr) == [f"frames: {len(frames)} read, 0 skipped, {len(frames)} answered"]


def test_a_bad_frame_in_a_video_is_skipped_and_counted(int8_model, loaded_model, mnist_test, tmp_path):
    x, y = mnist_test
    right = _well_read(loaded_model, x, y, 2)
    video = _write_video(tmp_path / "digits.avi", _digit_frames(x, right, 3))
    data = bytearray(video.read_bytes())
    starts = [i for i in range(len(data) - 2) if data[i:i + 3] == b"\xff\xd8\xff"]  # each frame is one JPEG
    assert len(starts) == 6
    data[starts[2]:starts[2] + 600] = bytes(600)  # the third frame no longer decodes
    video.write_bytes(data)
    result = run_cli("camera", str(int8_model), "--source", str(video), "--headless")
    frames = _answers(result.stdout)
    assert ["error" in f for f in frames] == [False, False, True, False, False, False]
    assert [f["digit"] for f in frames if "error" not in f] == [int(y[right[0]])] * 2 + [int(y[right[1]])] * 3
    assert messages(result.stderr) == ["frames: 6 read, 1 skipped, 5 answered"]


def test_camera_loop_survives_a_bad_frame(int8_model, png_folders, tmp_path):
    for name in ("000.png", "001.png"):
        (tmp_path / name).write_bytes((png_folders["white-on-black"] / name).read_bytes())
    (tmp_path / "0005.png").write_bytes(b"broken")
    result = run_cli("camera", str(int8_model), "--source", str(tmp_path), "--headless")
    frames = _answers(result.stdout)
    assert ["error" in f for f in frames] == [False, True, False]
    assert frames[1]["error"].startswith(f"{tmp_path / '0005.png'}: ")
    assert messages(result.stderr) == ["frames: 3 read, 1 skipped, 2 answered"]


FAILING_SOURCE = """
import numpy as np, edge.camera as camera
class Failing(camera.Source):
    name, live, frames = "test camera", {live}, 0
    def read(self):
        self.frames += 1
        if self.frames == 3:
            raise RuntimeError("sensor fell off")
        return np.full((120, 160, 3), 200, np.uint8)
camera.open_source = lambda spec, warn: Failing()
"""


@pytest.mark.parametrize("live", [True, False], ids=["live", "file"])
def test_a_failing_capture_ends_the_run_with_one_line(int8_model, live):
    result = run_patched(FAILING_SOURCE.format(live=live), "camera", str(int8_model), "--headless")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (message,) = messages(result.stderr)
    answered = len(_answers(result.stdout))  # a live camera drops frames nobody took yet, a file never
    assert answered in ((0, 1, 2) if live else (2,))
    assert message == f"Error: test camera: unexpected RuntimeError (sensor fell off); " \
                      f"frames: {answered} read, 0 skipped, {answered} answered"


UNPLUGGED_CAMERA = """
import cv2, numpy as np
class Camera:
    reads = 0
    def __init__(self, spec): pass
    def isOpened(self): return True
    def release(self): pass
    def read(self):
        Camera.reads += 1
        return (True, np.full((120, 160, 3), 200, np.uint8)) if Camera.reads <= 2 else (False, None)
cv2.VideoCapture = Camera
"""


def test_a_camera_unplugged_mid_stream_is_an_error(int8_model):
    """OpenCV's read() returning False ends a video; from a live camera it means the camera is gone."""
    result = run_patched(UNPLUGGED_CAMERA, "camera", str(int8_model), "--source", "0", "--headless")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (message,) = messages(result.stderr)
    assert message.startswith("Error: camera 0 stopped sending frames")


def test_a_live_camera_is_tried_again_before_giving_up(monkeypatch):
    import cv2

    opened: list[int] = []

    class Camera:
        works_after = 3

        def __init__(self, spec):
            opened.append(spec)

        def isOpened(self):
            return len(opened) >= self.works_after

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoCapture", Camera)
    monkeypatch.setattr(camera, "OPEN_WAIT_SECONDS", 0)
    said: list[str] = []
    camera.open_source("0", warn=said.append)
    assert opened == [0, 0, 0]
    assert said == ["cannot open camera 0; trying again in 0 s (1/2)", "cannot open camera 0; trying again in 0 s (2/2)"]
    opened.clear()
    Camera.works_after = 4
    with pytest.raises(UserError, match=r"^cannot open camera 0 \(tried 3 times\)$"):
        camera.open_source("0", warn=said.append)
    assert opened == [0, 0, 0]


def test_a_camera_that_stops_answering_ends_the_run():
    release = threading.Event()

    class Stuck(camera.Source):
        name, live = "stuck camera", True

        def read(self):
            release.wait(60)
            return None

    try:
        with pytest.raises(camera.CaptureFailed, match="^stuck camera: no frame for 0.2 s"):
            list(camera.frames(Stuck(), stall_seconds=0.2))
    finally:
        release.set()


GATED_SECOND_IMAGE = """
import sys, edge.predict as predict
load_image = predict.load_image
def gated(source, **kwargs):
    if str(source).endswith("001.png"):
        sys.stdin.readline()  # the test says when the second image may be read
    return load_image(source, **kwargs)
predict.load_image = gated
"""


def test_answers_stream_one_image_at_a_time(int8_model, png_folders, tmp_path):
    """The first answer is out while the second image has not even been read."""
    for name in ("000.png", "001.png", "002.png"):
        (tmp_path / name).write_bytes((png_folders["white-on-black"] / name).read_bytes())
    with subprocess.Popen(_patched(GATED_SECOND_IMAGE, "predict", str(int8_model), str(tmp_path), "--json"),
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=ROOT) as process:
        try:
            assert select.select([process.stdout], [], [], 120)[0], "no answer within 120 s"
            first = json.loads(process.stdout.readline())
            assert first["file"] == str(tmp_path / "000.png") and process.poll() is None
            rest, _ = process.communicate("go\n", timeout=120)
        finally:
            process.kill()
    assert [a["file"] for a in _answers(rest)] == [str(tmp_path / "001.png"), str(tmp_path / "002.png")]
    assert process.returncode == 0


def test_an_unreadable_folder_is_one_error_line(int8_model, png_folders, tmp_path, monkeypatch):
    """Permissions (simulated: tests may run as root, whom no permission stops)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    iterdir = Path.iterdir

    def refuse(self):
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return iterdir(self)

    monkeypatch.setattr(Path, "iterdir", refuse)
    good = png_folders["white-on-black"] / "000.png"
    result = CliRunner().invoke(edge_main, ["predict", str(int8_model), str(locked), str(good), "--json"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # not an exception escaping
    answers = _answers(result.stdout)
    assert answers[0] == {"file": str(locked), "error": f"{locked}: cannot read folder (Permission denied)"}
    assert answers[1]["file"] == str(good) and answers[1]["digit"] in range(10)


def test_an_unexpected_exception_is_that_images_error_line(int8_model, png_folders, monkeypatch):
    files = [str(png_folders["white-on-black"] / f"00{i}.png") for i in range(3)]
    load_image = predict.load_image

    def failing(source, **kwargs):
        if str(source) == files[1]:
            raise MemoryError("cannot allocate 4 GB")
        return load_image(source, **kwargs)

    monkeypatch.setattr(predict, "load_image", failing)
    for multi in ([], ["--multi"]):
        result = CliRunner().invoke(edge_main, ["predict", str(int8_model), *files, "--json", *multi])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        answers = _answers(result.stdout)
        assert answers[1] == {"file": files[1], "error": f"{files[1]}: unexpected MemoryError (cannot allocate 4 GB)"}
        assert [a["file"] for a in answers] == files and "error" not in answers[0] and "error" not in answers[2]
        assert "1 of 3 inputs failed" in result.stderr


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=2000),
                      st.tuples(st.integers(1, 120), st.integers(1, 120), st.integers(0, 2**32 - 1))))
def test_random_bytes_and_images_never_escape(loaded_model, tmp_path, data):
    path = tmp_path / "input.png"
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        w, h, seed = data
        Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)).save(path)
    (answer,) = predict_files(loaded_model, [path])
    if "error" in answer:
        assert set(answer) == {"file", "error"} and answer["file"] == str(path)
        assert answer["error"].startswith(f"{path}: ") and "\n" not in answer["error"]
        return
    assert set(answer) == {"file", "digit", "confidence", "top"} and answer["file"] == str(path)
    assert 0 <= answer["confidence"] <= 1
    if not answer["top"]:  # no ink
        assert answer["digit"] is None and answer["confidence"] == 0
        return
    digits, probabilities = zip(*answer["top"])
    assert len(set(digits)) == len(digits) == 3 and set(digits) <= set(range(10))
    assert list(probabilities) == sorted(probabilities, reverse=True) and all(0 <= p <= 1 for p in probabilities)
    assert probabilities[0] == answer["confidence"]
    assert answer["digit"] == (digits[0] if answer["confidence"] >= 0.5 else None)  # the default threshold


def test_an_error_line_names_its_file_once(tmp_path):
    """It used to say `bad.png: error: bad.png: ...`: the CLI prefixed a message that already names the file."""
    bad, missing = tmp_path / "bad.png", tmp_path / "missing.png"
    bad.write_text("not an image")
    lines = {f"{bad}: not a PNG, JPEG, WEBP, GIF, BMP or TIFF image", f"{missing}: no such file"}
    for inputs in ([bad], [bad, missing]):
        result = CliRunner().invoke(edge_main, ["predict", str(SHIPPED_MODEL), *map(str, inputs)])
        assert result.exit_code == 1 and set(result.stdout.splitlines()) <= lines
        assert len(result.stdout.splitlines()) == len(inputs)
