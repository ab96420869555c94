"""The phone page's server as a client meets it: files, the runtime allow-list, POST /api/predict, and
what it does to hostile clients (oversized, slow or cross-site requests, more uploads than workers)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import itertools
import json
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from browser import serving
from conftest import BLOCK_TENSORFLOW, ROOT, messages, run_cli
from edge import serve, workers
from edge.errors import UserError
from edge.page import RUNTIME
from edge.metadata import bare_flatbuffer, load_metadata
from edge.protocol import GuardedProtocol

CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def fake_runtime(tmp_path_factory):
    """A node_modules holding only stand-ins for the allow-listed files (API tests need no `npm ci`)."""
    root = tmp_path_factory.mktemp("node_modules")
    for name in (*RUNTIME, "@litertjs/core/package.json"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"\0asm" + bytes(4096) if name.endswith(".wasm") else b"export {};\n" * 100)
    return root


@pytest.fixture(scope="module")
def app(int8_model, fake_runtime):
    return serve.create_app(int8_model, node_modules=fake_runtime)


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def digit_png(mnist_npz) -> bytes:
    with np.load(mnist_npz) as d:
        image = d["x_test"][0]
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "PNG")
    return buf.getvalue()


def upload(client: TestClient, data: bytes, name: str = "digit.png", headers: dict | None = None):
    return client.post("/api/predict", files={"file": (name, data, "application/octet-stream")}, headers=headers)


def form(data: bytes, name: str = "digit.png") -> tuple[bytes, str]:
    """A multipart body with `data` as the field `file`, and its content type."""
    head = f'--xyzzy\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'.encode()
    return head + data + b"\r\n--xyzzy--\r\n", "multipart/form-data; boundary=xyzzy"


def call(app, method: str, raw_path: bytes, headers: dict[str, str] | None = None, body: Iterable[bytes] = (),
         stall: bool = False) -> tuple[int, dict[str, str], bytes, int]:
    """Call the app as uvicorn would: the path exactly as sent (no client normalises it), the body in
    chunks (`stall`: then nothing more, for ever). Returns status, headers, body, and the chunks read."""
    chunks = iter(body)
    read = 0

    async def receive() -> dict:
        nonlocal read
        chunk = next(chunks, None)
        if chunk is None:
            if stall:
                await asyncio.Event().wait()
            return {"type": "http.request", "body": b"", "more_body": False}
        read += 1
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def run() -> list[dict]:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": unquote(raw_path.decode()), "raw_path": raw_path, "root_path": "",
                 "query_string": b"", "client": ("127.0.0.1", 50000), "server": ("testserver", 80),
                 "headers": [(k.encode(), v.encode()) for k, v in {"host": "testserver", **(headers or {})}.items()]}
        await asyncio.wait_for(app(scope, receive, send), 60)  # a hard limit: fail rather than hang
        return sent

    start, *rest = asyncio.run(run())
    return (start["status"], {k.decode(): v.decode() for k, v in start["headers"]},
            b"".join(m.get("body", b"") for m in rest), read)


def test_page_model_and_metadata(client, int8_model):
    page = client.get("/")
    assert page.status_code == 200 and "importmap" in page.text and page.headers["content-type"].startswith("text/html")
    assert client.get("/model.json").json() == load_metadata(int8_model)
    model = client.get("/model.tflite")
    assert model.content == bare_flatbuffer(int8_model.read_bytes())  # metadata travels as /model.json


def test_only_allow_listed_runtime_files_are_served_compressed(client, fake_runtime):
    wasm = client.get("/node_modules/@litertjs/core/wasm/litert_wasm_compat_internal.wasm")
    assert wasm.status_code == 200 and wasm.headers["content-type"] == "application/wasm"
    assert wasm.headers["content-encoding"] == "gzip"  # httpx decompresses: the bytes are the file's
    assert wasm.content == (fake_runtime / "@litertjs/core/wasm/litert_wasm_compat_internal.wasm").read_bytes()
    again = client.get("/node_modules/@litertjs/core/wasm/litert_wasm_compat_internal.wasm",
                       headers={"if-none-match": wasm.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert client.get("/node_modules/@litertjs/core/dist/index.js").headers["content-type"].startswith("text/javascript")
    refused = client.get("/node_modules/@litertjs/core/package.json")
    assert refused.status_code == 404
    assert refused.json() == {"error": "node_modules/@litertjs/core/package.json: not served"}
    assert client.get("/", headers={"accept-encoding": "gzip"}).headers["content-encoding"] == "gzip"


@pytest.mark.parametrize("raw_path", [
    b"/../pyproject.toml", b"/node_modules/../pyproject.toml", b"/node_modules/%2e%2e/edge/serve.py",
    b"/%2e%2e/pyproject.toml", b"/..%2fpyproject.toml", b"/node_modules/@litertjs/core/../../../pyproject.toml",
    b"/node_modules/@litertjs/core/dist/../package.json", b"/%2e%2e%2f%2e%2e%2fedge%2fserve.py",
])
def test_paths_out_of_the_served_folders_are_refused(app, raw_path):
    status, headers, body, _ = call(app, "GET", raw_path)
    assert status == 404 and headers["content-type"] == "application/json", raw_path
    assert set(json.loads(body)) == {"error"}


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


def test_a_body_past_the_limit_is_cut_off_early(app, digit_png):
    """A valid form, then 100 MB after its last boundary, chunked (no length declared): multipart
    parsers skip bytes there, so only the body's own limit stops the reading."""
    body, content_type = form(digit_png)
    junk = (bytes(CHUNK) for _ in range(10 * serve.MAX_UPLOAD // CHUNK))
    status, headers, answer, read = call(app, "POST", b"/api/predict", {"content-type": content_type},
                                         itertools.chain([body], junk))
    assert status == 413 and json.loads(answer)["error"].startswith("upload too large")
    assert headers["connection"] == "close"  # the rest of the body is never read
    assert read * CHUNK <= serve.MAX_UPLOAD + serve.FORM_OVERHEAD + 2 * CHUNK


def test_a_declared_oversize_is_refused_before_reading(app, digit_png):
    body, content_type = form(digit_png)
    status, _, answer, read = call(app, "POST", b"/api/predict",
                                   {"content-type": content_type, "content-length": str(100 * serve.MAX_UPLOAD)},
                                   [body])
    assert status == 413 and read == 0


@pytest.fixture
def spooled_to_disk(monkeypatch) -> list[int]:
    """Records every upload that Starlette's spooled file would move to disk."""
    rolled: list[int] = []
    rollover = tempfile.SpooledTemporaryFile.rollover

    def record(self):
        rolled.append(self.tell())
        rollover(self)

    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover", record)
    return rolled


def test_an_upload_never_reaches_the_disk(client, spooled_to_disk):
    """A file a little over the limit fits in the form overhead, so only the file's own limit refuses it."""
    largest = upload(client, bytes(serve.MAX_UPLOAD), "zeros.png")
    assert largest.status_code == 415 and largest.json()["error"].startswith("zeros.png: ")  # accepted, then read
    for size in (serve.MAX_UPLOAD + 1, serve.MAX_UPLOAD + serve.FORM_OVERHEAD // 2):
        over = upload(client, bytes(size))
        assert over.status_code == 413 and "too large" in over.json()["error"], size
    assert spooled_to_disk == []


def test_the_server_hangs_up_on_an_oversized_upload(int8_model):
    """Over a real socket: once the file passes the limit the server answers and closes, rather than
    reading (and discarding) the rest of a 200 MB body."""
    with serving(int8_model) as url:
        address = urlsplit(url)
        with socket.create_connection((address.hostname, address.port), timeout=60) as conn:
            conn.sendall(b"POST /api/predict HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n"
                         b"Content-Type: multipart/form-data; boundary=xyzzy\r\n\r\n" % address.netloc.encode())
            head = form(b"")[0].split(b"\r\n\r\n")[0] + b"\r\n\r\n"
            conn.sendall(b"%x\r\n%s\r\n" % (len(head), head))
            chunk, sent, answer = b"%x\r\n%s\r\n" % (CHUNK, bytes(CHUNK)), 0, b""
            try:
                while sent < 20 * serve.MAX_UPLOAD and not select.select([conn], [], [], 0)[0]:
                    conn.sendall(chunk)
                    sent += CHUNK
                answer = conn.recv(4096)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server closed with our bytes unread: the kernel resets the connection
    assert sent < 5 * serve.MAX_UPLOAD
    assert answer == b"" or answer.startswith(b"HTTP/1.1 413 "), answer[:200]


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


def test_an_address_it_cannot_serve_on_is_one_line_before_serving_is_said(int8_model):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli("serve", str(int8_model), "--port", str(port), timeout=60, check=False)
    assert result.returncode == 1 and "serving" not in result.stdout
    assert messages(result.stderr) == [f"Error: cannot listen on 127.0.0.1:{port} (Address already in use)"]
    result = run_cli("serve", str(int8_model), "--host", "", timeout=60, check=False)
    assert result.returncode == 1 and messages(result.stderr)[-1].startswith("Error: --host is empty")


def test_every_refusal_is_the_same_json_shape(client, digit_png):
    body, content_type = form(digit_png)
    refusals = [
        client.get("/no-such-page"),
        client.delete("/app.js"),
        client.post("/api/predict", content=digit_png),
        client.post("/api/predict", content=b"--xyzzy\r\ngarbage", headers={"content-type": content_type}),
        upload(client, digit_png, headers={"origin": "http://elsewhere.test"}),
        upload(client, bytes(serve.MAX_UPLOAD + 1)),
    ]
    assert [r.status_code for r in refusals] == [404, 405, 400, 400, 403, 413]
    for r in refusals:
        assert r.headers["content-type"] == "application/json" and list(r.json()) == ["error"], r.text
        assert "\n" not in r.json()["error"]


@pytest.mark.parametrize("host, origin, status", [
    ("testserver", "http://testserver", 200),
    ("192.168.1.20:8000", "http://192.168.1.20:8000", 200),  # the page opened on a phone, via the Pi's address
    ("localhost:8000", "http://LOCALHOST:8000", 200),
    ("[::1]:8000", "http://[::1]:8000", 200),
    ("pi.local", "http://pi.local:80", 200),
    ("testserver", None, 200),  # not a browser: curl, the benchmark
    ("192.168.1.20:8000", "http://evil.test", 403),  # any page the user opens may post here
    ("192.168.1.20:8000", "http://192.168.1.20:8001", 403),
    ("192.168.1.20:8000", "null", 403),  # sandboxed frames, file: pages
    ("", "http://192.168.1.20:8000", 403),
    ("192.168.1.20:8000", "http://[::1", 403),  # not a URL at all (urlsplit raises)
])
def test_posts_from_other_sites_are_refused(client, digit_png, host, origin, status):
    headers = {"host": host, **({"origin": origin} if origin else {})}
    answer = upload(client, digit_png, headers=headers)
    assert answer.status_code == status, answer.text
    if status == 403:
        assert "cross-origin" in answer.json()["error"]


@pytest.mark.parametrize("length, close", [("5000", False), (None, True), (str(20 * serve.MAX_UPLOAD), True)],
                         ids=["declared", "chunked", "too-large"])
def test_a_refused_body_is_read_only_if_its_size_is_known_and_small(app, length, close):
    """A client that sends its whole body before reading gets the refusal only if the server reads on."""
    headers = {"content-type": "multipart/form-data; boundary=x", "origin": "http://elsewhere.test",
               **({"content-length": length} if length else {})}
    status, answer_headers, _, read = call(app, "POST", b"/api/predict", headers, [bytes(5000)])
    assert status == 403 and read == 0
    assert (answer_headers.get("connection") == "close") == close


def test_responses_forbid_sniffing_and_carry_the_page_csp(client):
    page = client.get("/")
    (importmap,) = re.findall(r'<script type="importmap">(.*?)</script>', page.text, re.S)
    digest = base64.b64encode(hashlib.sha256(importmap.encode()).digest()).decode()
    policy = dict(d.strip().split(" ", 1) for d in page.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'self'" and policy["object-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'" and policy["connect-src"] == "'self'"
    assert set(policy["script-src"].split()) == {"'self'", "'wasm-unsafe-eval'", f"'sha256-{digest}'"}
    for response in (page, client.get("/app.js"), client.get("/model.tflite"), client.get("/nope"),
                     client.post("/api/predict", content=b"x")):
        assert response.headers["x-content-type-options"] == "nosniff", response.url
        assert response.headers["content-security-policy"] == page.headers["content-security-policy"]


@pytest.fixture
def held_worker(monkeypatch):
    """Workers read images only when the test lets them: (entered, release, timed_out) events."""
    entered, release, timed_out = threading.Event(), threading.Event(), threading.Event()
    real = workers.read_digit

    def held(model, data, name):
        entered.set()
        if not release.wait(60):
            timed_out.set()
        return real(model, data, name)

    monkeypatch.setattr(workers, "read_digit", held)
    return entered, release, timed_out


def test_a_full_queue_is_answered_503_and_the_page_still_loads(int8_model, fake_runtime, digit_png, held_worker):
    entered, release, timed_out = held_worker
    with TestClient(serve.create_app(int8_model, node_modules=fake_runtime, workers=1, queue=0)) as client, \
            ThreadPoolExecutor(1) as background:
        first = background.submit(upload, client, digit_png)
        assert entered.wait(60)
        busy = upload(client, digit_png)
        assert busy.status_code == 503 and "busy" in busy.json()["error"]
        assert client.get("/").status_code == 200  # the image is read off the event loop
        release.set()
        assert first.result(60).status_code == 200
        assert upload(client, digit_png).status_code == 200  # the place was given back
    assert not timed_out.is_set()  # the page loaded while the worker was held, not after it gave up


def test_an_unexpected_failure_is_that_uploads_json_500(client, digit_png, monkeypatch):
    def broken(model, data, name):
        raise MemoryError("cannot allocate")

    monkeypatch.setattr(workers, "read_digit", broken)
    answer = upload(client, digit_png)
    assert answer.status_code == 500 and answer.json() == {"error": "digit.png: unexpected MemoryError (cannot allocate)"}
    monkeypatch.undo()
    assert upload(client, digit_png).status_code == 200  # the worker and the server go on


def test_a_stalled_upload_is_answered_408(app, digit_png, monkeypatch):
    monkeypatch.setattr(serve, "BODY_SECONDS", 0.2)
    body, content_type = form(digit_png)
    status, headers, answer, _ = call(app, "POST", b"/api/predict", {"content-type": content_type},
                                      [body[:100]], stall=True)
    assert status == 408 and "took longer" in json.loads(answer)["error"] and headers["connection"] == "close"


def test_each_worker_has_its_own_interpreter(int8_model, digit_png):
    """Eight uploads on two workers: at most two models, each only ever used by one thread."""
    pool = workers.Workers(int8_model, workers=2, queue=6)
    users: dict[int, set[int]] = {}
    original = workers.read_digit

    niceness: set[int] = set()

    def spy(model, data, name):
        users.setdefault(id(model), set()).add(threading.get_ident())
        niceness.add(os.nice(0))
        return original(model, data, name)

    async def eight() -> list[dict]:
        return await asyncio.gather(*(pool.read_digit(f"{i}.png", digit_png) for i in range(8)))

    workers.read_digit = spy
    try:
        answers = asyncio.run(eight())
    finally:
        workers.read_digit = original
        pool.close()
    assert [a["file"] for a in answers] == [f"{i}.png" for i in range(8)] and len({a["digit"] for a in answers}) == 1
    assert 1 <= len(users) <= 2 and all(len(threads) == 1 for threads in users.values())
    if sys.platform == "linux":  # workers give way to the event loop (nice values are per thread there)
        assert niceness == {min(19, os.nice(0) + workers.WORKER_NICENESS)}


@pytest.fixture(scope="module")
def strict_server(int8_model):
    """The real server with request deadlines of 0.3 s."""
    protocol = type("Strict", (GuardedProtocol,), {"headers_seconds": 0.3, "body_seconds": 0.3})
    with serving(int8_model, http=protocol) as url:
        yield urlsplit(url).hostname, urlsplit(url).port


@pytest.fixture(scope="module")
def crowded_server(int8_model):
    """The real server with room for one connection, which it keeps open a minute when idle."""
    patient = type("Patient", (GuardedProtocol,), {"headers_seconds": 60})
    with serving(int8_model, http=patient, limit_concurrency=1, timeout_keep_alive=60) as url:
        yield urlsplit(url).hostname, urlsplit(url).port


def _exchange(server: tuple[str, int], data: bytes) -> bytes:
    """Send `data` and read until the server closes the connection (a hard 30 s limit)."""
    with socket.create_connection(server, timeout=30) as conn:
        conn.sendall(data)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
        return received


def _json_error(response: bytes) -> tuple[str, dict]:
    head, body = response.split(b"\r\n\r\n", 1)
    assert b"content-type: application/json" in head.lower(), head
    return head.split(b"\r\n")[0].decode(), json.loads(body)


def test_a_request_trickling_in_is_cut_off(strict_server):
    status, error = _json_error(_exchange(strict_server, b"GET / HTTP/1.1\r\nHost: x\r\n"))  # never ends
    assert status == "HTTP/1.1 408 Request Timeout" and "too long" in error["error"]
    assert _exchange(strict_server, b"") == b""  # a connection that never sends a request is closed too
    answered = _exchange(strict_server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # then no next request
    assert answered.startswith(b"HTTP/1.1 200 ") and answered.count(b"HTTP/1.1 ") == 1


def test_a_body_nobody_reads_is_cut_off(strict_server):
    """GET / is answered at once; the body it announced never comes, and the connection is closed."""
    response = _exchange(strict_server, b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nabc")
    assert response.startswith(b"HTTP/1.1 200 ") and response.count(b"HTTP/1.1 ") == 1


def test_a_refused_upload_leaves_the_connection_usable(strict_server):
    """The refused body is read and dropped, so the next request on the connection is answered."""
    refused = (b"POST /api/predict HTTP/1.1\r\nHost: x\r\nOrigin: http://elsewhere.test\r\n"
               b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 100000\r\n\r\n" + bytes(100000))
    responses = _exchange(strict_server, refused + b"GET /model.json HTTP/1.1\r\nHost: x\r\n\r\n")
    assert re.findall(rb"HTTP/1\.1 (\d+) ", responses) == [b"403", b"200"]


def test_malformed_http_is_a_json_error(strict_server):
    status, error = _json_error(_exchange(strict_server, b"NOT HTTP AT ALL\r\n\r\n"))
    assert status.startswith("HTTP/1.1 400 ") and "malformed" in error["error"]


def test_a_connection_over_the_limit_is_a_json_503(crowded_server):
    with socket.create_connection(crowded_server, timeout=30) as held:  # answered, then kept open (keep-alive)
        held.sendall(b"GET /model.json HTTP/1.1\r\nHost: x\r\n\r\n")
        assert held.recv(16).startswith(b"HTTP/1.1 200")
        status, error = _json_error(_exchange(crowded_server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
        assert status.startswith("HTTP/1.1 503 ") and "too many connections" in error["error"]


@pytest.fixture(scope="module")
def capped_server(int8_model):
    """The real server allowing two connections per address, kept open a minute when idle."""
    capped = type("Capped", (GuardedProtocol,), {"headers_seconds": 60, "per_address": 2})
    with serving(int8_model, http=capped) as url:
        yield urlsplit(url).hostname, urlsplit(url).port


def test_one_address_cannot_hold_every_connection(capped_server):
    """Idle connections past one address's share are refused at once (slowloris); another address gets in."""
    held = [socket.create_connection(capped_server, timeout=30) for _ in range(2)]
    try:
        status, error = _json_error(_exchange(capped_server, b""))  # refused on arrival, before any request
        assert status.startswith("HTTP/1.1 503 ") and "from your address" in error["error"]
        with socket.socket() as other:
            other.settimeout(30)
            other.bind(("127.0.0.2", 0))
            other.connect(capped_server)
            other.sendall(b"GET /model.json HTTP/1.1\r\nHost: x\r\n\r\n")
            assert other.recv(16).startswith(b"HTTP/1.1 200")
    finally:
        for connection in held:
            connection.close()
