"""The phone page's server: the page, the model for in-browser inference, and a server-side fallback.

Phones run the model themselves (LiteRT.js in `web/`); this app only hands out files, plus
`POST /api/predict` for browsers that cannot, which answers exactly what `predict --json` does.
Starlette (not a framework with its own ML stack) keeps the edge install small and TensorFlow-free.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from pathlib import Path
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edge.errors import UserError
from edge.metadata import bare_flatbuffer
from edge.predict import predict_upload
from edge.runner import DigitModel

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
NODE_MODULES = ROOT / "node_modules"
MAX_UPLOAD = 10 * 1024 * 1024
"""Largest accepted upload (bytes): a 50 MP phone JPEG fits, a mistaken video does not."""
FORM_OVERHEAD = 64 * 1024
"""Multipart headers and boundaries allowed on top of the file itself."""
PAGE_RUNTIME = (
    "@litertjs/core/dist/index.js",
    "@litertjs/wasm-utils/dist/index.js",
    "@litertjs/core/wasm/litert_wasm_internal.js",
    "@litertjs/core/wasm/litert_wasm_internal.wasm",
)
"""What every page load fetches from node_modules (compressed before the first request)."""
RUNTIME = PAGE_RUNTIME + (
    "@litertjs/core/wasm/litert_wasm_compat_internal.js",  # browsers without relaxed SIMD
    "@litertjs/core/wasm/litert_wasm_compat_internal.wasm",
)
"""The only node_modules files served at all: never the whole folder."""
MEDIA_TYPES = {".js": "text/javascript", ".wasm": "application/wasm"}


class PayloadTooLarge(Exception):
    """An upload over MAX_UPLOAD bytes: answered 413 as soon as the body passes the limit."""


class _InMemoryParser(MultiPartParser):
    """Starlette's multipart parser, but an upload never spills to a temporary file on disk."""

    spool_max_size = MAX_UPLOAD + 1


@functools.cache
def _gzipped(path: Path) -> tuple[bytes, str]:
    """A runtime file compressed once per process (the 9.4 MB .wasm would cost 0.4 s per request), and its ETag."""
    body = gzip.compress(path.read_bytes(), 6, mtime=0)
    return body, f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


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
    try:
        form = await _InMemoryParser(request.headers, _limited(request), max_files=1, max_fields=8).parse()
    except MultiPartException as e:
        raise UserError(f"bad multipart form ({e.message})") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise UserError("no file: send the image in a multipart field named 'file'")
    data = await upload.read()
    await form.close()
    if len(data) > MAX_UPLOAD:
        raise PayloadTooLarge
    return upload.filename or "upload", data


def create_app(model_path: str | Path, *, web: Path = WEB, node_modules: Path = NODE_MODULES) -> Starlette:
    """The app for one model file; a missing or broken model is a UserError here, not at the first request."""
    model = DigitModel(model_path)
    flatbuffer = bare_flatbuffer(model.path.read_bytes())  # metadata goes out on its own, as JSON
    if not (web / "index.html").is_file():
        raise UserError(f"{web}: the page's files are missing (index.html)")
    missing = [name for name in RUNTIME if not (node_modules / name).is_file()]
    if missing:
        raise UserError(f"{node_modules / missing[0]}: missing; run `npm ci` in {ROOT}")

    async def predict(request: Request) -> Response:
        try:
            name, data = await _read_upload(request)
        except PayloadTooLarge:
            return _error(413, f"upload too large (at most {MAX_UPLOAD // (1024 * 1024)} MB)")
        except UserError as e:
            return _error(400, str(e))
        # On the event loop, not a thread pool: one interpreter must never run two invokes at once.
        answer = predict_upload(model, name, data)
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

    routes = [
        Route("/api/predict", predict, methods=["POST"]),
        Route("/model.tflite", lambda _: Response(flatbuffer, media_type="application/octet-stream")),
        Route("/model.json", lambda _: Response(json.dumps(model.meta), media_type="application/json")),
        Route("/node_modules/{name:path}", runtime),
        Mount("/", StaticFiles(directory=web, html=True)),
    ]
    for name in PAGE_RUNTIME:
        _gzipped(node_modules / name)
    return Starlette(routes=routes, middleware=[Middleware(GZipMiddleware, minimum_size=500)])

