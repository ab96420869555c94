"""The phone page's server: the page, the model for in-browser inference, and a server-side fallback.

Phones run the model themselves (LiteRT.js in `web/`); this app only hands out files, plus
`POST /api/predict` for browsers that cannot, which answers exactly what `predict --json` does.
Starlette (not a framework with its own ML stack) keeps the edge install small and TensorFlow-free.

Made to face anyone on the same network: decoding and inference run in a few worker threads
behind a short queue (edge/workers.py), uploads are capped in size and in time, POSTs from other
sites' pages are refused, and the page is served with a Content-Security-Policy. Every refusal is
JSON, `{"error": ...}`, like every other error.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import gzip
import hashlib
import json
import logging
import os
import re
import socket
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.errors import UserError
from edge.metadata import bare_flatbuffer
from edge.page import RUNTIME, page_root
from edge.predict import unexpected
from edge.runner import DigitModel
from edge.workers import Busy, Workers, default_workers

WEB = page_root() / "web"
NODE_MODULES = page_root() / "node_modules"
MAX_UPLOAD = 10 * 1024 * 1024
"""Largest accepted upload (bytes): a 50 MP phone JPEG fits, a mistaken video does not."""
FORM_OVERHEAD = 64 * 1024
"""Multipart headers and boundaries allowed on top of the file itself."""
BODY_SECONDS = 30.0
"""An upload must arrive within this time (10 MB at 3 Mbit/s), or it is answered 408."""
QUEUE = 4
"""Uploads allowed to wait (or arrive) while every worker is busy; the next one gets 503 at once."""
MAX_CONNECTIONS = 64
"""Open connections (uvicorn's limit_concurrency): beyond this, requests get 503."""
KEEP_ALIVE_SECONDS = 5
"""An idle keep-alive connection is closed after this long."""
MEDIA_TYPES = {".js": "text/javascript", ".wasm": "application/wasm"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class PayloadTooLarge(MultiPartException):
    """An upload over MAX_UPLOAD bytes: answered 413 as soon as the body passes the limit."""

    def __init__(self) -> None:
        super().__init__(f"upload too large (at most {MAX_UPLOAD // (1024 * 1024)} MB)")


class _UploadParser(MultiPartParser):
    """Starlette's multipart parser, refusing the file as soon as it passes MAX_UPLOAD.

    The file is spooled in memory up to that size, so an upload never reaches the disk.
    """

    spool_max_size = MAX_UPLOAD

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._file_bytes = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current_part.file is not None:
            self._file_bytes += end - start
            if self._file_bytes > MAX_UPLOAD:
                raise PayloadTooLarge  # before these bytes are written anywhere
        super().on_part_data(data, start, end)


@functools.cache
def _gzipped(path: Path) -> tuple[bytes, str]:
    """A runtime file compressed once per process (the 9.4 MB .wasm would cost 0.4 s per request), and its ETag."""
    body = gzip.compress(path.read_bytes(), 6, mtime=0)
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def _error(status: int, message: str, *, close: bool = False) -> JSONResponse:
    """The one error shape; `close` ends the connection instead of reading the rest of the body."""
    return JSONResponse({"error": message}, status_code=status, headers={"Connection": "close"} if close else None)


def _refusal(headers: Headers, status: int, message: str) -> JSONResponse:
    """An error that leaves the request's body unread.

    When the body's declared length is within the limit, uvicorn reads and discards the rest, so a
    client that sends its whole body before reading (browsers, most HTTP libraries) gets this answer
    rather than a reset connection. A body of unknown or excessive length is not read: the
    connection is closed.
    """
    declared = headers.get("content-length", "")
    return _error(status, message, close=not (declared.isdigit() and int(declared) <= MAX_UPLOAD + FORM_OVERHEAD))


async def _limited(request: Request) -> AsyncIterator[bytes]:
    """The request body, cut off with PayloadTooLarge once it passes MAX_UPLOAD plus form overhead."""
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > MAX_UPLOAD + FORM_OVERHEAD:
            raise PayloadTooLarge
        yield chunk


async def _read_upload(request: Request) -> tuple[str, bytes]:
    """(filename, bytes) of the multipart field `file`, read into memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_UPLOAD + FORM_OVERHEAD:
        raise PayloadTooLarge
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UserError("send the image as multipart/form-data in a field named 'file'")
    form = await _UploadParser(request.headers, _limited(request), max_files=1, max_fields=8).parse()
    try:
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise UserError("no file: send the image in a multipart field named 'file'")
        return upload.filename or "upload", await upload.read()
    finally:
        await form.close()


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None] | None:
    """(host, port) of a URL's authority, the port defaulted by scheme; None when it does not parse."""
    try:
        parts = urlsplit(f"//{netloc}")
        return (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        return None


def _same_origin(headers: Headers, scheme: str) -> bool:
    """True unless the browser says the request comes from another site's page.

    Browsers send `Origin` with every POST; a form or script on any page a user opens can POST here
    (a "simple" request needs no CORS preflight), so its origin must name this server as the user's
    browser reached it: the `Host` the request was sent to (localhost, or the Pi's address).
    Requests without `Origin` come from programs (curl, the benchmark), not from web pages.
    """
    origin = headers.get("origin")
    if origin is None:
        return True
    try:
        url = urlsplit(origin)
    except ValueError:  # "http://[::1": not a URL, so not this server's
        return False
    mine = _host_port(headers.get("host", ""), scheme)
    return mine is not None and mine[0] != "" and _host_port(url.netloc, url.scheme) == mine


def content_security_policy(page: str) -> str:
    """The page's CSP: its own files only; inline scripts (the import map) by hash; WebAssembly
    compiled (LiteRT.js); images from canvases and photos (blob:, data:); no framing."""
    inline = [s for s in re.findall(r"<script[^>]*>(.*?)</script>", page, re.S) if s]
    hashes = "".join(f" 'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in inline)
    return ("default-src 'self'; "
            f"script-src 'self' 'wasm-unsafe-eval'{hashes}; "
            "style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


class _Guard:
    """Refuses cross-site POSTs and marks every response nosniff, with the page's CSP."""

    def __init__(self, app: ASGIApp, csp: str):
        self.app = app
        self.headers = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": csp}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(self.headers)
            await send(message)

        headers = Headers(scope=scope)
        if scope["method"] not in SAFE_METHODS and not _same_origin(headers, scope["scheme"]):
            refusal = _refusal(headers, 403, "cross-origin request refused: use the page this server serves")
            return await refusal(scope, receive, marked)
        await self.app(scope, receive, marked)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def _server_error(request: Request, exc: Exception) -> Response:
    return _error(500, f"internal error ({type(exc).__name__})")


def create_app(model_path: str | Path, *, web: Path = WEB, node_modules: Path = NODE_MODULES,
               workers: int | None = None, queue: int = QUEUE) -> Starlette:
    """The app for one model file; a missing or broken model is a UserError here, not at the first request.

    `workers` threads (default: one per core) read uploads, `queue` more may wait for them.
    """
    model = DigitModel(model_path)
    flatbuffer = bare_flatbuffer(model.path.read_bytes())  # metadata goes out on its own, as JSON
    if not (web / "index.html").is_file():
        raise UserError(f"{web}: the page's files are missing (index.html)")
    missing = [name for name in RUNTIME if not (node_modules / name).is_file()]
    if missing:
        raise UserError(f"{node_modules / missing[0]}: missing; run `npm ci` in {node_modules.parent}")
    readers = Workers(model.path, workers or default_workers(), queue)

    async def predict(request: Request) -> Response:
        try:
            with readers.place():
                name, data = await asyncio.wait_for(_read_upload(request), BODY_SECONDS)
                try:
                    answer = await readers.read_digit(name, data)
                except Exception as e:  # noqa: BLE001  a decoder's bug, a MemoryError: this upload's answer
                    message = unexpected(name, e)
                    logging.getLogger("uvicorn.error").warning(message)
                    return _error(500, message)
        except Busy:
            busy = _refusal(request.headers, 503, "server busy: every worker is reading an image; try again")
            busy.headers["Retry-After"] = "1"
            return busy
        except PayloadTooLarge as e:
            return _error(413, e.message, close=True)
        except asyncio.TimeoutError:
            return _error(408, f"upload took longer than {BODY_SECONDS:g} s", close=True)
        except ClientDisconnect:
            return _error(400, "upload interrupted", close=True)
        except MultiPartException as e:
            return _refusal(request.headers, 400, f"bad multipart form ({e.message})")
        except UserError as e:
            return _refusal(request.headers, 400, str(e))
        return JSONResponse(answer, status_code=415 if "error" in answer else 200)

    async def runtime(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in RUNTIME:
            return _error(404, f"{name}: not served")
        path = node_modules / name
        media_type = MEDIA_TYPES[path.suffix]
        if "gzip" not in request.headers.get("accept-encoding", ""):
            return FileResponse(path, media_type=media_type)
        body, etag = _gzipped(path)
        # A phone coming back revalidates and gets 304 instead of 3 MB again.
        headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=media_type, headers={**headers, "Content-Encoding": "gzip"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        readers.close()

    routes = [
        Route("/api/predict", predict, methods=["POST"]),
        Route("/model.tflite", lambda _: Response(flatbuffer, media_type="application/octet-stream")),
        Route("/model.json", lambda _: Response(json.dumps(model.meta), media_type="application/json")),
        Route("/node_modules/{name:path}", runtime),
        Mount("/", StaticFiles(directory=web, html=True)),
    ]
    for name in RUNTIME:
        _gzipped(node_modules / name)
    csp = content_security_policy((web / "index.html").read_text(encoding="utf-8"))
    return Starlette(routes=routes, lifespan=lifespan,
                     middleware=[Middleware(_Guard, csp=csp), Middleware(GZipMiddleware, minimum_size=500)],
                     exception_handlers={HTTPException: _http_error, Exception: _server_error})


def listen(host: str, port: int) -> socket.socket:
    """The server's socket, bound before anything says it is serving: a taken port is one line."""
    if not host.strip():  # "" would mean every interface, said as http://:8000
        raise UserError("--host is empty: give an address (127.0.0.1 for this machine, 0.0.0.0 for the network)")
    try:
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({os.strerror(e.errno) if e.errno else e})") from None


def server_config(app: Starlette, host: str, port: int):
    """How `serve` runs the app: uvicorn with request deadlines (edge/protocol.py) and its limits set."""
    import uvicorn

    from edge.protocol import GuardedProtocol

    return uvicorn.Config(app, host=host, port=port, http=GuardedProtocol, limit_concurrency=MAX_CONNECTIONS,
                          timeout_keep_alive=KEEP_ALIVE_SECONDS, log_level="warning")
