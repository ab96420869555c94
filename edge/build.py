"""The phone page as a static site: every file it needs, with relative URLs, for any static host or `serve`.

One build, two ways out: `digitcnn page OUT` writes it to a folder (GitHub Pages, any https host, a USB
stick), and `serve` hands out the same files from memory. What goes in is derived from the folders at
build time, never listed by hand: every file of `web/`, the LiteRT.js files of edge/page.py RUNTIME
under `node_modules/`, the model's bare flatbuffer and its metadata as JSON. Three files are completed
here: index.html gets its Content-Security-Policy (a static host cannot send the header) and a
modulepreload link per module, and sw.js the site's file list and a cache name made from the content,
so a new model or new code is a new cache and the service worker never mixes versions.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path

from edge.errors import UserError
from edge.metadata import bare_flatbuffer
from edge.page import RUNTIME, page_root

WEB = page_root() / "web"
NODE_MODULES = page_root() / "node_modules"
INDEX, SERVICE_WORKER = "index.html", "sw.js"
_CSP_META = '<meta http-equiv="Content-Security-Policy" content="">'
_PRELOADS = "<!-- modulepreload: every module, written by edge/build.py -->"
_CACHE = re.compile(r"^const CACHE = .*$", re.M)
_FILES = re.compile(r"^const FILES = .*$", re.M)


def content_security_policy(page: str) -> str:
    """The page's CSP: its own files only; inline scripts (the import map) by hash; WebAssembly compiled
    (LiteRT.js); images from canvases and photos (blob:, data:). `frame-ancestors` is not here: a
    <meta> policy cannot carry it (browsers ignore it there and say so), `serve` adds it to its header."""
    inline = [s for s in re.findall(r"<script[^>]*>(.*?)</script>", page, re.S) if s]
    hashes = "".join(f" 'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in inline)
    return ("default-src 'self'; "
            f"script-src 'self' 'wasm-unsafe-eval'{hashes}; "
            "style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
            "object-src 'none'; base-uri 'none'; form-action 'self'")


def _completed(template: str, marker: str | re.Pattern, text: str, where: str) -> str:
    """`template` with its one `marker` replaced by `text`; a page without it is a broken checkout."""
    found = marker.findall(template) if isinstance(marker, re.Pattern) else [marker] * template.count(marker)
    if len(found) != 1:
        raise UserError(f"{where}: expected one {getattr(marker, 'pattern', marker)!r}, found {len(found)}")
    return template.replace(found[0], text)


def _index(page: str, modules: list[str]) -> str:
    """index.html with a modulepreload link for every module (the import map's targets included), then
    its CSP, computed last from the finished page."""
    importmap = re.search(r'<script type="importmap">(.*?)</script>', page, re.S)
    mapped = list(json.loads(importmap.group(1))["imports"].values()) if importmap else []
    links = "\n".join(f'<link rel="modulepreload" href="{url}">' for url in [*mapped, *modules])
    page = _completed(page, _PRELOADS, links, INDEX)
    policy = _CSP_META.replace('content=""', f'content="{content_security_policy(page)}"')
    return _completed(page, _CSP_META, policy, INDEX)


def _web_files(web: Path) -> dict[str, bytes]:
    """Every file under `web/` by its relative URL; hidden files and caches are not the page's."""
    files = {}
    for path in sorted(web.rglob("*")):
        relative = path.relative_to(web)
        if path.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
            files[relative.as_posix()] = path.read_bytes()
    return files


def site(flatbuffer: bytes, meta: dict, *, web: Path = WEB, node_modules: Path = NODE_MODULES) -> dict[str, bytes]:
    """The whole site for one model: {relative URL: bytes}, sw.js's cache name a hash of everything else."""
    if not (web / INDEX).is_file() or not (web / SERVICE_WORKER).is_file():
        raise UserError(f"{web}: the page's files are missing ({INDEX}, {SERVICE_WORKER})")
    missing = [name for name in RUNTIME if not (node_modules / name).is_file()]
    if missing:
        raise UserError(f"{node_modules / missing[0]}: missing; run `npm ci` in {node_modules.parent}")
    files = _web_files(web)
    for name in RUNTIME:
        files[f"node_modules/{name}"] = (node_modules / name).read_bytes()
    files["model.tflite"] = bare_flatbuffer(flatbuffer)  # the metadata goes out on its own, as JSON
    files["model.json"] = json.dumps(meta).encode()
    modules = [name for name in files if name.endswith(".js") and name != SERVICE_WORKER
               and not name.startswith("node_modules/")]
    files[INDEX] = _index(files[INDEX].decode(), modules).encode()
    cached = sorted(name for name in files if name != SERVICE_WORKER)
    digest = hashlib.sha256()
    for name in cached:
        digest.update(b"%s\0%d\0" % (name.encode(), len(files[name])))
        digest.update(files[name])
    worker = files[SERVICE_WORKER].decode()
    worker = _completed(worker, _CACHE, f"const CACHE = 'digitcnn-{digest.hexdigest()[:16]}';", SERVICE_WORKER)
    files[SERVICE_WORKER] = _completed(worker, _FILES, f"const FILES = {json.dumps(cached)};", SERVICE_WORKER).encode()
    return files


def cache_name(files: dict[str, bytes]) -> str:
    """The service worker's cache for this build (what a test finds in the browser's CacheStorage)."""
    return re.search(r"const CACHE = '([^']+)'", files[SERVICE_WORKER].decode()).group(1)


def model_site(model_path: str | Path, **folders: Path) -> dict[str, bytes]:
    """The site for a model file, checked as every command checks one (a broken model is one line here)."""
    from edge.runner import DigitModel

    model = DigitModel(model_path)
    return site(model.path.read_bytes(), model.meta, **folders)


def _is_build(folder: Path) -> bool:
    """True for a folder this module wrote: its sw.js names a built cache (web/ itself does not)."""
    worker = folder / SERVICE_WORKER
    return (folder / INDEX).is_file() and worker.is_file() and re.search(
        r"^const CACHE = 'digitcnn-[0-9a-f]{16}';$", worker.read_text(errors="replace"), re.M) is not None


def write_site(out: str | Path, files: dict[str, bytes]) -> Path:
    """Writes the site to `out`, whole or not at all: built beside it, then swapped in.

    `out` may be new, empty, or an earlier build (replaced whole, with anything added to it since, such
    as docs); any other folder is refused, so a mistyped OUT never deletes someone's files.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; give a folder for the site")
    if out.is_symlink() or (out.is_dir() and any(out.iterdir()) and not _is_build(out)):
        raise UserError(f"{out}: not empty and not an earlier page build; give a new or empty folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as e:
        raise UserError(f"{out}: cannot write there ({e.strerror})") from None
    old = None
    try:
        for name, data in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(data)
        staging.chmod(0o755)  # mkdtemp makes 0700: a web server must read it
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            out.rename(old / out.name)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None and not out.exists():
            (old / out.name).rename(out)
        raise
    finally:
        if old is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(old)
    return out
