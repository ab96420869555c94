"""Benchmark the phone page in headless Chromium on this machine; prints one JSON line.

    python bench/web.py [--model runs/lenet-plus/model_int8.tflite] [--strokes 20]

Stroke end to answer on the page (measured in the page with performance.now(), from the pointerup
event to the answer in the DOM: preprocessing, inference, drawing the result), opening the page to
the first possible answer (runtime and model loaded), and everything the page transferred, as sent
(gzip): a fresh browser context, so nothing comes from a cache. Then, with the Inside view open, the
same strokes again: the time from each reading to the whole view updated (web/inside/, every stage
drawn), which the first opening (it fetches the model's constants) does not count. Then the same
two for a repeat visit (the service worker installed by the first one answers from its cache) and
an offline one (the server stopped): opening to the first possible answer, and the bytes that
still came from the network.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser import PHONE, STROKES, chromium, draw, missing, serving, wait_ready, wait_until  # noqa: E402

TARGETS = {"stroke_to_answer_ms": 20.0, "open_to_ready_s": 0.5, "transfer_bytes": 3.5e6, "cached_open_to_ready_s": 0.3,
           "inside_update_ms": 50.0}


def _network_bytes(response) -> int:
    """Bytes a response took from the network; none when the service worker answered from its cache."""
    if response.from_service_worker:
        return 0
    sizes = response.request.sizes()
    return sizes["responseBodySize"] + sizes["responseHeadersSize"]


def cached_visits(context, url: str, opens: int) -> tuple[list[float], list[tuple[str, int]]]:
    """Opens the page `opens` times in `context` (whose service worker controls it): seconds to the first
    possible answer, and what came from the network ((url, bytes), the worker's own update check included)."""
    ready, network = [], []
    for _ in range(opens):
        page = context.new_page()
        page.on("response", lambda response: network.append((response.url, _network_bytes(response))))
        page.goto(url)
        wait_ready(page)
        ready.append(page.evaluate("window.digitcnn.readyAt") / 1000)
        page.close()
    return ready, [(u, n) for u, n in network if n]


@click.command()
@click.option("--model", type=click.Path(dir_okay=False, exists=True),
              default=str(ROOT / "runs" / "lenet-plus" / "model_int8.tflite"), show_default=True)
@click.option("--strokes", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--opens", type=click.IntRange(min=1), default=5, show_default=True,
              help="Page opens (fresh contexts) for the open-to-ready median.")
def main(model: str, strokes: int, opens: int) -> None:
    reason = missing()
    if reason:
        raise click.ClickException(reason)
    with chromium() as browser:
        with serving(model) as url:
            ready = []
            for _ in range(opens):
                context = browser.new_context(**PHONE)
                page = context.new_page()
                transfers = []  # the page's and its service worker's (which fills its cache meanwhile)

                def finished(request, transfers=transfers):
                    sizes = request.sizes()
                    transfers.append((request.url, sizes["responseBodySize"] + sizes["responseHeadersSize"]))

                context.on("requestfinished", finished)
                page.goto(url)
                wait_ready(page)
                ready.append(page.evaluate("window.digitcnn.readyAt") / 1000)
                wait_until(page, "navigator.serviceWorker.controller !== null", 60_000)  # all of it cached
                context.remove_listener("requestfinished", finished)
                if len(ready) < opens:
                    context.close()
            draw_strokes(page, strokes)
            latencies = page.evaluate("window.digitcnn.latencies")
            preprocess = page.evaluate("window.digitcnn.preprocessMs")
            path = page.evaluate("window.digitcnn.path")
            # Opening scrolls to the view, smoothly unless motion is reduced: reduced, the scroll is done when
            # the click returns, so going back to the pad cannot race it. The view stays open.
            page.emulate_media(reduced_motion="reduce")
            page.click("#inside-open")
            wait_until(page, "window.digitcnn.inside.updateMs.length > 0")
            page.evaluate("scrollTo(0, 0)")
            draw_strokes(page, strokes)
            wait_until(page, f"window.digitcnn.inside.updateMs.length > {strokes}")
            inside = page.evaluate("window.digitcnn.inside.updateMs")[1:]
            page.close()
            repeat, repeat_network = cached_visits(context, url, opens)
        offline, offline_network = cached_visits(context, url, opens)  # the server has stopped
        context.close()
    latency = statistics.median(latencies)
    ready_s = statistics.median(ready)
    transfer = sum(size for _, size in transfers)
    result = {
        "model": model,
        "answered_by": path,
        "strokes": len(latencies),
        "stroke_to_answer_ms_p50": round(latency, 2),
        "stroke_to_answer_ms_max": round(max(latencies), 2),
        "preprocess_ms_p50": round(statistics.median(preprocess), 2),
        "inside_update_ms_p50": round(statistics.median(inside), 2),
        "inside_update_ms_max": round(max(inside), 2),
        "open_to_ready_s": round(ready_s, 3),
        "open_to_ready_s_each": [round(r, 3) for r in ready],
        "transfer_bytes": transfer,
        "requests": len(transfers),
        "outside_requests": sorted({u for u, _ in transfers if not u.startswith(url)}),
        "repeat_open_to_ready_s": round(statistics.median(repeat), 3),
        "repeat_network_bytes": sum(n for _, n in repeat_network),
        "repeat_network_requests": sorted({u.removeprefix(url) for u, _ in repeat_network}),
        "offline_open_to_ready_s": round(statistics.median(offline), 3),
        "offline_network_bytes": sum(n for _, n in offline_network),
        "targets_met": {
            "stroke_to_answer": latency < TARGETS["stroke_to_answer_ms"],
            "open_to_ready": ready_s < TARGETS["open_to_ready_s"],
            "transfer": transfer < TARGETS["transfer_bytes"],
            "inside_update": statistics.median(inside) < TARGETS["inside_update_ms"],
            "repeat": statistics.median(repeat) < TARGETS["cached_open_to_ready_s"],
            "offline": statistics.median(offline) < TARGETS["cached_open_to_ready_s"]
            and not offline_network,
        },
    }
    click.echo(json.dumps(result))


def draw_strokes(page, strokes: int) -> None:
    """`strokes` strokes over the sample digits in turn, the pad cleared before each digit."""
    digits = list(STROKES)
    drawn = 0
    while drawn < strokes:
        page.click("#clear")
        digit_strokes = STROKES[digits[drawn % len(digits)]][: strokes - drawn]
        draw(page, digit_strokes)
        drawn += len(digit_strokes)


if __name__ == "__main__":
    main()
