"""Load-test `serve` as a room of phones would, with an attacker among them; prints one JSON line.

    python bench/serve_load.py [--model runs/lenet-plus/model_int8.tflite] [--clients 20] [--requests 400]

Starts `python -m edge serve MODEL` on a free local port. Then 20 clients send 400 uploads to
/api/predict, each as soon as its last was answered, cycling through: real-size phone photos (3, 8
and 12 MP JPEGs of a digit drawn on textured paper, generated here, and the 4032x3024 photos of
$DIGITCNN_DATASETS/photos-dev/*_kharshit_*, read where they are), small PNG drawings like the
page's pad, and a flat 16-bit 8000x8000 PNG (141 KB that decodes to 128 MB). Meanwhile one more
client fetches `/` every 100 ms. Uploads carry the page's own Origin, as the page's would.

A 503 (a full queue) is tried again after the Retry-After the server names, as the page's user
would; a request that meets a kept-alive connection the server has just closed is sent again on a
new one, as browsers do (counted). Reported: requests by status, 5xx other than 503, dropped connections, `GET /` latency,
the server process's peak RSS (VmHWM), and whether every accepted request was answered (a reading,
or a one-line JSON error such as "too large").
"""

from __future__ import annotations

import http.client
import io
import json
import multiprocessing
import multiprocessing.connection
import multiprocessing.synchronize
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import click
from PIL import Image, ImageChops, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser import STROKES  # noqa: E402

DATASETS = Path(os.environ.get("DIGITCNN_DATASETS", ROOT.parent / "shared" / "datasets"))
PHOTO_SIZES = ((2048, 1536), (3264, 2448), (4000, 3000))  # 3, 8 and 12 MP
MIX = ("photo",) * 3 + ("drawing",) * 6 + ("bomb",)  # of every 10 uploads
PAGE_EVERY_SECONDS = 0.1
MAX_TRIES = 100  # per upload: a 503 is retried
READING = ["confidence", "digit", "file", "top"]  # the keys of an answer
TARGETS = {"server_errors": 0, "dropped": 0, "page_p99_ms": 100.0, "peak_rss_mb": 300.0, "unanswered": 0}


def _digit(image: Image.Image, digit: int, side: int, ink: int) -> None:
    """Draws a digit's strokes (those the browser tests draw on the pad) in a centred square."""
    left, top = (image.width - side) // 2, (image.height - side) // 2
    draw = ImageDraw.Draw(image)
    for stroke in STROKES[digit]:
        draw.line([(left + x * side, top + y * side) for x, y in stroke], fill=ink, width=max(2, side // 14),
                  joint="curve")


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def phone_photo(size: tuple[int, int], digit: int) -> bytes:
    """A JPEG as a phone takes it: dark ink on paper, light falling off across the page, grain."""
    paper = Image.linear_gradient("L").resize(size).point(lambda v: 165 + v * 70 // 255)
    paper = ImageChops.add(paper, Image.effect_noise(size, 6), offset=-128)  # the noise is centred on 128
    _digit(paper, digit, min(size) // 3, ink=45)
    return _encoded(paper.convert("RGB"), "JPEG", quality=90)


def drawing(digit: int) -> bytes:
    """What the page posts for a finger drawing: white strokes on black, a PNG of a few KB."""
    pad = Image.new("L", (280, 280), 0)
    _digit(pad, digit, 200, ink=255)
    return _encoded(pad, "PNG")


def uploads() -> dict[str, list[tuple[str, bytes]]]:
    """(name, bytes) of each kind of upload."""
    digits = sorted(STROKES)
    photos = [(f"photo-{w}x{h}.jpg", phone_photo((w, h), digits[i % len(digits)]))
              for i, (w, h) in enumerate(PHOTO_SIZES)]
    photos += [(path.name, path.read_bytes()) for path in sorted((DATASETS / "photos-dev").glob("*_kharshit_*"))]
    bomb = _encoded(Image.new("I;16", (8000, 8000), 3000), "PNG")
    return {"photo": photos, "drawing": [(f"drawing-{d}.png", drawing(d)) for d in digits],
            "bomb": [("flat-16bit-8000x8000.png", bomb)]}


def _form(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = "digitcnn-load-test"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n\r\n'.encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Client:
    """One kept-alive connection, as a browser holds one.

    The server closes a connection idle for its keep-alive time; a request sent on it just then
    fails before any answer. Browsers send such a request again on a new connection, and so does
    this (`stale` counts them); a request that fails on a new connection is a dropped one.
    """

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.stale = 0

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        while True:
            reused = self.conn.sock is not None
            try:
                self.conn.request(method, path, body, headers or {})
                response = self.conn.getresponse()
                return response.status, response.headers, response.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                if not reused:
                    raise
                self.stale += 1

    def close(self) -> None:
        self.conn.close()


def upload_client(port: int, jobs: queue.Queue, outcomes: list, stale: list) -> None:
    """Posts uploads from `jobs` one after another, as a phone would; a 503 (server busy) is tried
    again after the Retry-After it names."""
    client = Client(port)
    while True:
        try:
            kind, name, data = jobs.get_nowait()
        except queue.Empty:
            break
        body, content_type = _form(name, data)
        for _ in range(MAX_TRIES):
            try:
                status, headers, answer = client.request(
                    "POST", "/api/predict", body, {"Content-Type": content_type, "Origin": f"http://127.0.0.1:{port}"})
            except (OSError, http.client.HTTPException) as e:
                outcomes.append((kind, type(e).__name__, None))
                break
            try:
                shape = sorted(json.loads(answer))
            except ValueError:
                shape = None
            outcomes.append((kind, status, shape))
            if status != 503:
                break
            time.sleep(float(headers.get("retry-after", 1)))
        else:
            outcomes.append((kind, "gave up", None))
    client.close()
    stale.append(client.stale)


def page_client(port: int, stop: multiprocessing.synchronize.Event,
                results: multiprocessing.connection.Connection) -> None:
    """GET / every 100 ms, timing each whole answer; sends back (latencies, failures). A process of
    its own, so that the uploading threads' share of this process's GIL never counts as the
    server's latency."""
    latencies: list[float] = []
    failures: list = []
    client = Client(port)
    due = time.perf_counter()
    while not stop.is_set():
        start = time.perf_counter()
        try:
            status, _, _ = client.request("GET", "/")
            if status != 200:
                failures.append(status)
            latencies.append(time.perf_counter() - start)
        except (OSError, http.client.HTTPException) as e:
            failures.append(type(e).__name__)
        due += PAGE_EVERY_SECONDS
        stop.wait(max(0.0, due - time.perf_counter()))
    client.close()
    results.send((latencies, failures, client.stale))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_serving(port: int, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise click.ClickException(f"the server exited with code {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise click.ClickException(f"the server did not listen on port {port} within {seconds:g} s")


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    return int(line.split()[1]) / 1024


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


@click.command()
@click.option("--model", type=click.Path(dir_okay=False, exists=True),
              default=str(ROOT / "runs" / "lenet-plus" / "model_int8.tflite"), show_default=True)
@click.option("--clients", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--requests", "total", type=click.IntRange(min=1), default=400, show_default=True)
def main(model: str, clients: int, total: int) -> None:
    kinds = uploads()
    jobs: queue.Queue = queue.Queue()
    mix: Counter = Counter()
    for i in range(total):
        kind = MIX[i % len(MIX)]
        jobs.put((kind, *kinds[kind][i // len(MIX) % len(kinds[kind])]))
        mix[kind] += 1
    port = _free_port()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen([sys.executable, "-m", "edge", "serve", model, "--port", str(port)], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=log)
        try:
            _wait_until_serving(port, server)
            outcomes: list = []
            stale: list[int] = []
            processes = multiprocessing.get_context("spawn")
            stop = processes.Event()
            results, page_results = processes.Pipe(duplex=False)
            page = processes.Process(target=page_client, args=(port, stop, page_results), daemon=True)
            page.start()
            page_results.close()  # the child's end: if it dies, recv() below raises instead of waiting
            start = time.perf_counter()
            threads = [threading.Thread(target=upload_client, args=(port, jobs, outcomes, stale))
                       for _ in range(clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - start
            stop.set()
            latencies, page_failures, page_stale = results.recv()
            page.join()
            peak_rss = _peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
        log.seek(0)
        server_log = [line for line in log.read().splitlines() if not line.startswith("INFO: ")]

    statuses = Counter(str(status) for _, status, _ in outcomes)
    by_kind = {kind: dict(Counter(str(s) for k, s, _ in outcomes if k == kind)) for kind in kinds}
    gave_up = statuses.pop("gave up", 0)
    dropped = sum(not isinstance(status, int) for _, status, _ in outcomes) - gave_up
    server_errors = sum(isinstance(s, int) and s >= 500 and s != 503 for _, s, _ in outcomes)
    busy = statuses.get("503", 0)
    # Accepted: neither refused as busy nor dropped. Answered: a reading, or a one-line JSON error.
    accepted = [(s, shape) for _, s, shape in outcomes if isinstance(s, int) and s != 503]
    answered = sum(shape == READING if s == 200 else shape in (["error"], ["error", "file"]) for s, shape in accepted)
    page_ms = [1000 * t for t in latencies]
    result = {
        "bench": "serve_load",
        "model": model,
        "workers": len(os.sched_getaffinity(0)),
        "clients": clients,
        "uploads": total,
        "requests": len(outcomes),
        "mix": dict(mix),
        "photos": [f"{name} ({len(data) / 1e6:.1f} MB)" for name, data in kinds["photo"]],
        "status": dict(statuses),
        "by_kind": by_kind,
        "server_errors": server_errors,
        "busy_503": busy,
        "gave_up_after_503s": gave_up,
        "dropped": dropped,
        "sent_again_on_a_new_connection": sum(stale) + page_stale,
        "accepted": len(accepted),
        "answered": answered,
        "readings": statuses.get("200", 0),
        "unanswered": len(accepted) - answered,
        "uploads_per_s": round(total / wall, 1),
        "wall_s": round(wall, 1),
        "page_gets": len(page_ms),
        "page_failures": page_failures,
        "page_p50_ms": round(statistics.median(page_ms), 1),
        "page_p99_ms": round(_percentile(page_ms, 99), 1),
        "page_max_ms": round(max(page_ms), 1),
        "server_peak_rss_mb": round(peak_rss, 1),
        "server_log": server_log[:10],  # warnings, and any traceback (there should be none)
        "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],  # other jobs too
    }
    result["targets_met"] = {
        "no_5xx": server_errors == TARGETS["server_errors"],
        "none_dropped": dropped == TARGETS["dropped"] and not page_failures,
        "page_p99": result["page_p99_ms"] < TARGETS["page_p99_ms"],
        "peak_rss": peak_rss < TARGETS["peak_rss_mb"],
        "every_accepted_answered": result["unanswered"] == TARGETS["unanswered"],
    }
    click.echo(json.dumps(result))


if __name__ == "__main__":
    main()
