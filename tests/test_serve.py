"""The phone page's server as a client meets it: files, the runtime allow-list, and POST /api/predict."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from conftest import BLOCK_TENSORFLOW, ROOT, run_cli
from edge import serve
from edge.errors import UserError
from edge.metadata import bare_flatbuffer, load_metadata


@pytest.fixture(scope="module")
def fake_runtime(tmp_path_factory):
    """A node_modules holding only stand-ins for the allow-listed files (API tests need no `npm ci`)."""
    root = tmp_path_factory.mktemp("node_modules")
    for name in (*serve.RUNTIME, "@litertjs/core/package.json"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"\0asm" + bytes(4096) if name.endswith(".wasm") else b"export {};\n" * 100)
    return root


@pytest.fixture(scope="module")
def client(int8_model, fake_runtime):
    with TestClient(serve.create_app(int8_model, node_modules=fake_runtime)) as c:
        yield c


@pytest.fixture(scope="module")
def digit_png(mnist_npz) -> bytes:
    with np.load(mnist_npz) as d:
        image = d["x_test"][0]
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def upload(client: TestClient, data: bytes, name: str = "digit.png"):
    return client.post("/api/predict", files={"file": (name, data, "application/octet-stream")})


def test_page_model_and_metadata(client, int8_model):
    page = client.get("/")
    assert page.status_code == 200 and "importmap" in page.text and page.headers["content-type"].startswith("text/html")
    assert client.get("/model.json").json() == load_metadata(int8_model)
    model = client.get("/model.tflite")
    assert model.content == bare_flatbuffer(int8_model.read_bytes())  # metadata travels as /model.json


def test_only_allow_listed_runtime_files_are_served_compressed(client, fake_runtime):
    wasm = client.get("/node_modules/@litertjs/core/wasm/litert_wasm_internal.wasm")
    assert wasm.status_code == 200 and wasm.headers["content-type"] == "application/wasm"
    assert wasm.headers["content-encoding"] == "gzip"  # httpx decompresses: the bytes are the file's
    assert wasm.content == (fake_runtime / "@litertjs/core/wasm/litert_wasm_internal.wasm").read_bytes()
    again = client.get("/node_modules/@litertjs/core/wasm/litert_wasm_internal.wasm",
                       headers={"if-none-match": wasm.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert client.get("/node_modules/@litertjs/core/dist/index.js").headers["content-type"].startswith("text/javascript")
    for path in ("/node_modules/@litertjs/core/package.json", "/node_modules/../pyproject.toml",
                 "/node_modules/%2e%2e/edge/serve.py"):
        refused = client.get(path)
        assert refused.status_code == 404, path
    assert client.get("/", headers={"accept-encoding": "gzip"}).headers["content-encoding"] == "gzip"


def test_predict_answers_what_predict_json_does(client, int8_model, digit_png, tmp_path):
    (tmp_path / "digit.png").write_bytes(digit_png)
    expected = json.loads(run_cli("predict", str(int8_model), str(tmp_path / "digit.png"), "--json").stdout)
    answer = upload(client, digit_png)
    assert answer.status_code == 200
    assert answer.json() == {**expected, "file": "digit.png"}


def test_blank_image_is_an_answer_not_an_error(client):
    buf = io.BytesIO()
    Image.new("L", (100, 100), 200).save(buf, "PNG")
    answer = upload(client, buf.getvalue())
    assert answer.status_code == 200 and answer.json()["digit"] is None and answer.json()["top"] == []


@pytest.mark.parametrize("data, status", [
    (b"this is not an image at all" * 10, 415),
    (b"", 415),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), 415),  # a PNG signature, then garbage
])
def test_bad_uploads_are_json_errors(client, data, status):
    answer = upload(client, data, "bad.png")
    assert answer.status_code == status
    assert answer.json()["error"].startswith("bad.png: ")


def test_oversized_upload_is_refused(client):
    answer = upload(client, bytes(serve.MAX_UPLOAD + 1))
    assert answer.status_code == 413 and "too large" in answer.json()["error"]


def test_malformed_requests_are_json_errors(client, digit_png):
    assert client.post("/api/predict", content=digit_png).status_code == 400
    wrong_field = client.post("/api/predict", files={"image": ("d.png", digit_png)})
    assert wrong_field.status_code == 400 and "'file'" in wrong_field.json()["error"]


def test_bad_model_or_missing_runtime_is_one_line_error(tmp_path, int8_model):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"nope")
    with pytest.raises(UserError, match="npm ci"):
        serve.create_app(int8_model, node_modules=tmp_path)
    # The real command, TensorFlow refused: the server gets as far as the model and says what is wrong.
    result = subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW, "-m", "edge", "serve", str(bad)],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 1 and "not a TFLite model" in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0
