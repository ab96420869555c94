"""The wheel as a user gets it: built, installed with [edge,serve] into a fresh virtualenv (no TensorFlow,
no checkout, no Node.js), then `digitcnn predict` and `digitcnn serve` run from another folder.

Needs PyPI (or pip's cache) for the build backend and the extras' packages.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT
from edge.page import RUNTIME
from edge.shipped import SHIPPED_MODEL

pytestmark = pytest.mark.slow
MAX_WHEEL = 5 * 1024 * 1024
INSTALL_HINT = 'Error: tensorflow is not installed: pip install "digitcnn[train]"'


def _pip_wheel(project: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "wheel", str(project), "--no-deps", "--wheel-dir", str(out)],
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = _pip_wheel(ROOT, out)
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = out.glob("digitcnn-*.whl")
    return path


@pytest.fixture(scope="module")
def user_env() -> dict:
    """A user's shell: nothing of this checkout or of the test's virtualenv on Python's path."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


@pytest.fixture(scope="module")
def installed(wheel, user_env, tmp_path_factory) -> Path:
    """A fresh virtualenv holding the wheel with its edge and serve extras; its bin folder."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=user_env)
    result = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"{wheel}[edge,serve]"],
                            capture_output=True, text=True, timeout=900, env=user_env)
    assert result.returncode == 0, result.stderr[-3000:]
    return venv / "bin"


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Path:
    """A working folder outside the checkout."""
    return tmp_path_factory.mktemp("elsewhere")


def test_wheel_carries_the_model_the_page_and_only_the_allowed_runtime(wheel):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert zf.read("edge/models/default_int8.tflite") == SHIPPED_MODEL.read_bytes()
        assert zf.read("edge/web/index.html") == (ROOT / "web" / "index.html").read_bytes()
    page = {f"edge/web/{p.relative_to(ROOT / 'web').as_posix()}" for p in (ROOT / "web").rglob("*") if p.is_file()}
    assert page <= names
    assert {n for n in names if n.startswith("edge/node_modules/")} == {f"edge/node_modules/{n}" for n in RUNTIME}
    assert not any(n.endswith(".tflite") and n != "edge/models/default_int8.tflite" for n in names)
    assert wheel.stat().st_size < MAX_WHEEL, f"{wheel.stat().st_size:,} bytes"


def test_building_without_node_modules_says_to_run_npm_ci(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md", "cli.py"):
        shutil.copy(ROOT / name, project / name)
    for folder in ("digitcnn", "export", "edge", "web"):
        shutil.copytree(ROOT / folder, project / folder, ignore=shutil.ignore_patterns("__pycache__"))
    built = _pip_wheel(project, tmp_path / "out")
    assert built.returncode != 0 and not list((tmp_path / "out").glob("*.whl"))
    assert ("node_modules/@litertjs/core/dist/index.js is missing: run `npm ci` before building the wheel"
            in built.stdout + built.stderr)


def test_installed_wheel_reads_digits_without_tensorflow(installed, user_env, elsewhere, mnist_pngs):
    absent = subprocess.run([str(installed / "python"), "-c",
                             "import importlib.util as u; print([m for m in ('tensorflow', 'keras') if u.find_spec(m)])"],
                            capture_output=True, text=True, timeout=60, env=user_env, cwd=elsewhere)
    assert absent.stdout.strip() == "[]"
    files = [str(path) for path, _ in mnist_pngs]
    result = subprocess.run([str(installed / "digitcnn"), "predict", *files, "--json"], capture_output=True,
                            text=True, timeout=120, env=user_env, cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [json.loads(line)["digit"] for line in result.stdout.splitlines()] == [label for _, label in mnist_pngs]
    shipped = next(line for line in result.stderr.splitlines() if line.startswith("model: "))
    assert shipped.endswith("edge/models/default_int8.tflite (shipped)")
    assert Path(shipped.split()[1]).is_relative_to(installed.parent)  # the installed copy, not the checkout's
    training = subprocess.run([str(installed / "digitcnn"), "train"], capture_output=True, text=True, timeout=60,
                              env=user_env, cwd=elsewhere)
    assert training.returncode == 1 and training.stderr.splitlines() == [INSTALL_HINT]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, seconds: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=seconds) as response:
        return response.read()


def _post_image(url: str, image: Path) -> dict:
    """POST the image as the page's fallback does (multipart field `file`), without an Origin, as scripts do."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{image.name}\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode() + image.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_installed_wheel_serves_the_page_model_and_runtime(installed, user_env, elsewhere, mnist_pngs):
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([str(installed / "digitcnn"), "serve", "--port", str(port), "--workers", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=user_env, cwd=elsewhere)
    try:
        deadline = time.monotonic() + 120  # start-up compresses the 9 MB .wasm once
        while True:
            try:
                page = _get(base + "/", 5).decode()
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.communicate()[0][-3000:]
                assert time.monotonic() < deadline, "the server did not answer within 120 s"
                time.sleep(0.5)
        assert "importmap" in page
        assert len(_get(base + "/model.tflite")) > 100_000
        assert _get(base + "/model.json")
        runtime = "@litertjs/core/wasm/litert_wasm_compat_internal.wasm"
        assert _get(f"{base}/node_modules/{runtime}") == (ROOT / "node_modules" / runtime).read_bytes()
        image, label = mnist_pngs[0]
        assert _post_image(base + "/api/predict", image)["digit"] == label
    finally:
        server.terminate()
        server.wait(30)


def test_installed_wheel_writes_the_static_site(installed, user_env, elsewhere):
    """`digitcnn page` needs no checkout either: the page and runtime come from the wheel."""
    result = subprocess.run([str(installed / "digitcnn"), "page", "site"], capture_output=True, text=True,
                            timeout=300, env=user_env, cwd=elsewhere)
    assert result.returncode == 0, result.stderr[-3000:]
    built = {p.relative_to(elsewhere / "site").as_posix() for p in (elsewhere / "site").rglob("*") if p.is_file()}
    assert {"index.html", "sw.js", "manifest.webmanifest", "model.tflite", "model.json"} <= built
    assert {f"node_modules/{name}" for name in RUNTIME} <= built
