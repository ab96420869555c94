"""The phone page's server: the page, the model for in-browser inference, and a server-side fallback.

Phones run the model themselves (LiteRT.js in `web/`); this app only hands out the page's files, the
same build `digitcnn page` writes for static hosts (edge/build.py), held in memory and compressed once,
plus `POST /api/predict` for browsers that cannot, which answers exactly what `predict --json` does.
Starlette (not a framework with its own ML stack) keeps the edge install small and TensorFlow-free.

Made to face anyone on the same network: decoding and inference run in a few worker threads
behind a short queue (edge/workers.py), uploads are capped in size and in time, POSTs from other
sites' pages are refused, and the page is served with a Content-Security-Policy. Every refusal is
JSON, `{"error": ...}`, like every other error.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import logging
import mimetypes
import os
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
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.build import INDEX, NODE_MODULES, WEB, content_security_policy, site
from edge.errors import UserError
from edge.predict import unexpected
from edge.runner import DigitModel
from edge.workers import Busy, Workers, default_workers

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
MEDIA_TYPES = {".js": "text/javascript", ".wasm": "application/wasm", ".webmanifest": "application/manifest+json",
               ".json": "application/json", ".tflite": "application/octet-stream", ".html": "text/html; charset=utf-8",
               ".css": "text/css; charset=utf-8"}
"""Types of the page's files that Python's mimetypes does not know, or guesses by the system's tables."""
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


class _File:
    """One file of the page as sent: its bytes (gzip-compressed once, when that pays), type and ETag."""

    def __init__(self, name: str, data: bytes):
        suffix = name[name.rfind("."):]
        self.media_type = MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
        packed = gzip.compress(data, 6, mtime=0) if len(data) >= 500 and suffix != ".png" else data
        self.gzipped = packed if len(packed) < len(data) else None
        self.body = data
        self.etag = f'"{hashlib.sha256(data).hexdigest()[:32]}"'

    def response(self, headers: Headers) -> Response:
        # no-cache: a phone coming back revalidates (304, no body) and never runs yesterday's code with
        # today's model; offline, the service worker answers instead.
        common = {"ETag": self.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
        if headers.get("if-none-match") == self.etag:
            return Response(status_code=304, headers=common)
        if self.gzipped is not None and "gzip" in headers.get("accept-encoding", ""):
            return Response(self.gzipped, media_type=self.media_type, headers={**common, "Content-Encoding": "gzip"})
        return Response(self.body, media_type=self.media_type, headers=common)


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
    files = {name: _File(name, data)
             for name, data in site(model.path.read_bytes(), model.meta, web=web, node_modules=node_modules).items()}
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

    async def page(request: Request) -> Response:
        name = request.path_params["name"]
        file = files.get(name + INDEX if name == "" or name.endswith("/") else name)
        if file is None:
            return _error(404, f"{name}: not served")
        return file.response(request.headers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        readers.close()

    routes = [
        Route("/api/predict", predict, methods=["POST"]),
        Route("/{name:path}", page, methods=["GET", "HEAD"]),
    ]
    # The header can say what the page's own <meta> policy cannot: no framing by other sites.
    csp = f"{content_security_policy(files[INDEX].body.decode())}; frame-ancestors 'none'"
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
