"""Benchmark the phone page in headless Chromium on this machine; prints one JSON line.

    python bench/web.py [--model runs/lenet-plus/model_int8.tflite] [--strokes 20]

Stroke end to answer on the page (measured in the page with performance.now(), from the pointerup
event to the answer in the DOM: preprocessing, inference, drawing the result), opening the page to
the first possible answer (runtime and model loaded), and everything the page transferred, as sent
(gzip): a fresh browser context, so nothing comes from a cache. Then, with the Inside view open, the
same strokes again: the time from each reading to the whole view updated (web/inside/, every stage
drawn), which the first opening (it fetches the model's constants) does not count.
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

TARGETS = {"stroke_to_answer_ms": 20.0, "open_to_ready_s": 0.5, "transfer_bytes": 3.5e6, "inside_update_ms": 50.0}


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
    with serving(model) as url, chromium() as browser:
        ready = []
        for _ in range(opens):
            context = browser.new_context(**PHONE)
            page = context.new_page()
            transfers = []
            page.on("requestfinished", lambda request, transfers=transfers: transfers.append(
                (request.url, request.sizes()["responseBodySize"] + request.sizes()["responseHeadersSize"])))
            page.goto(url)
            wait_ready(page)
            ready.append(page.evaluate("window.digitcnn.readyAt") / 1000)
            if len(ready) < opens:
                context.close()
        draw_strokes(page, strokes)
        latencies = page.evaluate("window.digitcnn.latencies")
        preprocess = page.evaluate("window.digitcnn.preprocessMs")
        path = page.evaluate("window.digitcnn.path")
        page.click("#inside-open")
        wait_until(page, "window.digitcnn.inside.updateMs.length > 0")
        page.evaluate("scrollTo(0, 0)")  # opening scrolled to the view: back to the pad, the view stays open
        draw_strokes(page, strokes)
        wait_until(page, f"window.digitcnn.inside.updateMs.length > {strokes}")
        inside = page.evaluate("window.digitcnn.inside.updateMs")[1:]
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
        "targets_met": {
            "stroke_to_answer": latency < TARGETS["stroke_to_answer_ms"],
            "open_to_ready": ready_s < TARGETS["open_to_ready_s"],
            "transfer": transfer < TARGETS["transfer_bytes"],
            "inside_update": statistics.median(inside) < TARGETS["inside_update_ms"],
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
