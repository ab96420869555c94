"""Driving the phone page in Debian's headless Chromium: shared by tests/test_web.py and bench/web.py.

Playwright's own browser downloads are not used (`playwright install` needs the internet): it drives
/usr/bin/chromium. The server runs in a thread of this process, on a free port.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync"]
# Under CI (or when asked), a machine that cannot run the browser tests fails them instead of skipping.
REQUIRED = os.environ.get("DIGITCNN_REQUIRE_BROWSER") == "1" or os.environ.get("CI") == "true"
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "has_touch": True}

# Digits as a person draws them on the pad: strokes of (x, y) points, fractions of the pad's side.
_ZERO = [(0.5 + 0.2 * math.sin(t / 24 * 2 * math.pi), 0.5 - 0.3 * math.cos(t / 24 * 2 * math.pi)) for t in range(25)]
STROKES: dict[int, list[list[tuple[float, float]]]] = {
    0: [_ZERO],
    1: [[(0.5, 0.2), (0.48, 0.8)]],
    4: [[(0.45, 0.2), (0.3, 0.6), (0.7, 0.6)], [(0.6, 0.35), (0.6, 0.85)]],
    7: [[(0.3, 0.22), (0.7, 0.22)], [(0.7, 0.22), (0.45, 0.82)]],
}


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright  # noqa: F401

        from edge.build import NODE_MODULES, RUNTIME
    except ImportError as e:
        return f"{e.name} is not installed (pip install -e '.[serve,dev]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (apt-get install chromium)"

    if not all((NODE_MODULES / name).is_file() for name in RUNTIME):
        return "node_modules/@litertjs missing (run `npm ci`)"
    return None


@contextmanager
def serving(model: str | Path, **config) -> Iterator[str]:
    """The phone page's server for `model`, in a thread, set up as `serve` sets it up; yields its base URL.

    `config` overrides uvicorn settings (a test's connection limit, a protocol with short deadlines).
    """
    import uvicorn

    from edge.serve import create_app, server_config

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = server_config(create_app(model), "127.0.0.1", port)
    for name, value in config.items():
        setattr(settings, name, value)
    server = uvicorn.Server(settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the server did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def chromium(*extra_flags: str):
    """Headless Debian Chromium under Playwright's sync API."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[*FLAGS, *extra_flags])
        try:
            yield browser
        finally:
            browser.close()


def wait_until(page, condition: str, timeout_ms: float = 30_000) -> None:
    """Until the JavaScript expression `condition` holds in the page.

    Not `page.wait_for_function`: Playwright runs its predicate through eval() at every poll, which
    the page's Content-Security-Policy forbids, as it should. This compiles once, as evaluate does.
    """
    page.evaluate(f"""() => new Promise((resolve, reject) => {{
        const end = performance.now() + {timeout_ms};
        const check = () => {{
            try {{
                if ({condition}) return resolve();
            }} catch (error) {{
                return reject(error);
            }}
            if (performance.now() > end) return reject(new Error({json.dumps(f"timed out waiting for {condition}")}));
            setTimeout(check, 10);
        }};
        check();
    }})""")


def wait_ready(page, timeout_ms: float = 30_000) -> None:
    """Until the page can answer: the model loaded, or the page settled on the server."""
    wait_until(page, "window.digitcnn && window.digitcnn.readyAt !== null", timeout_ms)


def answers(page) -> int:
    return int(page.evaluate("window.digitcnn.latencies.length"))


def trace(page, stroke: list[tuple[float, float]], steps: int = 6) -> None:
    """Draws one stroke on the pad with mouse events."""
    box = page.locator("#pad").bounding_box()

    def at(x: float, y: float) -> tuple[float, float]:
        return box["x"] + x * box["width"], box["y"] + y * box["height"]

    page.mouse.move(*at(*stroke[0]))
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
        for i in range(1, steps + 1):
            page.mouse.move(*at(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps))
    page.mouse.up()


def draw(page, strokes: list[list[tuple[float, float]]], steps: int = 6) -> dict:
    """Draws stroke by stroke (each stroke's end is read); returns the last answer."""
    for stroke in strokes:
        before = answers(page)
        trace(page, stroke, steps)
        wait_until(page, f"window.digitcnn.latencies.length > {before}")
    return page.evaluate("window.digitcnn.answer")
