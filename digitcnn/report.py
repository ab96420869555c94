"""An evaluation a person can read: numbers, plots and one self-contained report.html.

`summarize` turns an Evaluation into plain JSON-ready numbers; `write_report` writes those numbers,
the plots (PNG) and report.html (the same PNGs embedded as data URIs, so the file can be mailed
on its own) for one model or several side by side; `headline_lines` is the short terminal table.
Every file is written atomically.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np

from digitcnn.data import NUM_CLASSES
from digitcnn.evaluate import NO_DIGIT, Evaluation
from digitcnn.explain import draw, explainer
from digitcnn.figures import pyplot, write_png
from digitcnn.scores import calibration, confusion_matrix, per_class, percentiles, rejection_curve, wilson_interval
from edge.atomic import atomic_write, write_json
from edge.shipped import SHIPPED_MODEL

GALLERY = 24  # worst mistakes shown
EXPLAINED = 3  # images explained layer by layer per model
CONFIDENT = 0.9  # the threshold quoted in the headline: "answer only when this sure"


def model_names(paths: list[Path]) -> list[str]:
    """Short names for tables and file names: the file stem, with its folder when stems repeat."""
    names = [p.stem for p in paths]
    if len(set(names)) < len(names):
        names = [f"{p.parent.name}-{p.stem}" for p in paths]
    return [f"{i + 1}-{n}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def default_report_dir(paths: list[Path]) -> Path:
    """Beside the (first) model: `<stem>_report/`, or `<a>_vs_<b>_report/` for a comparison; for the shipped
    model, in the working folder (an installed package is no place to write)."""
    folder = Path() if paths[0].resolve() == SHIPPED_MODEL else paths[0].parent
    return folder / ("_vs_".join(model_names(paths)) + "_report")


def mistakes(evaluation: Evaluation) -> np.ndarray:
    """Indices of the wrong answers, most confident first: the mistakes that matter most."""
    wrong = np.nonzero(~evaluation.correct)[0]
    return wrong[np.argsort(-evaluation.confidence[wrong], kind="stable")]


def summarize(evaluation: Evaluation, name: str) -> dict:
    """Every number of the report for one model, JSON-ready."""
    data, answers, correct, withheld = evaluation.data, evaluation.predicted, evaluation.correct, evaluation.withheld
    no_digit = int((answers == NO_DIGIT).sum())
    confusion = confusion_matrix(data.labels, answers, NUM_CLASSES + 1 if no_digit else NUM_CLASSES)
    classes = per_class(confusion)
    ece, reliability = calibration(evaluation.confidence, correct)
    n, right = len(data), int(correct.sum())
    return {
        "name": name, "model": str(evaluation.model.path), "format": evaluation.model.kind, "data": data.source,
        "n": n, "correct": right, "accuracy": right / n, "accuracy_ci95": list(wilson_interval(right, n)),
        "no_digit": no_digit,
        "withheld": {"right": int((withheld & correct).sum()), "wrong": int((withheld & ~correct).sum()),
                     "temperature": evaluation.model.confidence.temperature,
                     "threshold": evaluation.model.confidence.threshold},
        "macro_f1": float(np.mean([c["f1"] for c in classes])), "per_class": classes,
        "confusion": confusion.tolist(),
        "confusion_labels": [str(d) for d in range(NUM_CLASSES)] + (["no digit"] if no_digit else []),
        "ece": ece, "reliability": reliability,
        "rejection": rejection_curve(evaluation.confidence, correct),
        "latency_ms": percentiles(evaluation.latency_ms),
        "images_per_second": float(data.found.sum() / evaluation.seconds) if evaluation.seconds else None,
        "seconds": evaluation.seconds,
        "preprocess_ms": None if data.preprocess_ms is None else percentiles(data.preprocess_ms),
        "skipped": data.skipped,
        "mistakes": [{"image": data.names[i], "true": int(data.labels[i]),
                      "answer": None if answers[i] == NO_DIGIT else int(answers[i]),
                      "confidence": float(evaluation.confidence[i])} for i in mistakes(evaluation)[:GALLERY]],
    }


# --------------------------------------------------------------------------------------------------
# Plots


def _answer_text(answer: int) -> str:
    return "no digit" if answer == NO_DIGIT else str(answer)


def confusion_figure(summary: dict):
    from matplotlib.colors import PowerNorm

    counts = np.array(summary["confusion"])
    fig, ax = pyplot().subplots(figsize=(6.4, 5.6), layout="constrained")
    ax.imshow(counts, cmap="Blues", norm=PowerNorm(0.3, vmin=0, vmax=max(int(counts.max()), 1)))
    for (t, a), count in np.ndenumerate(counts):
        if count:
            ax.text(a, t, str(count), ha="center", va="center", fontsize=7,
                    color="white" if count > 0.3 * counts.max() else "black")
    ax.set(xticks=range(counts.shape[1]), xticklabels=summary["confusion_labels"], yticks=range(NUM_CLASSES),
           xlabel="answer", ylabel="true digit", title=f"{summary['name']}: confusion matrix (counts)")
    return fig


def reliability_figure(summary: dict):
    bins = [b for b in summary["reliability"] if b["count"]]
    fig, (top, bottom) = pyplot().subplots(2, 1, figsize=(5.6, 5.6), height_ratios=[3, 1], sharex=True,
                                           layout="constrained")
    width = 1 / len(summary["reliability"])
    top.bar([b["low"] for b in bins], [b["accuracy"] for b in bins], width=width, align="edge",
            color="tab:blue", edgecolor="white", label="accuracy in the bin")
    top.plot([b["confidence"] for b in bins], [b["confidence"] for b in bins], "o", color="tab:orange", ms=3,
             label="mean confidence in the bin")
    top.plot([0, 1], [0, 1], "--", color="gray", lw=1, label="perfect calibration")
    top.set(ylim=(0, 1), ylabel="accuracy", title=f"{summary['name']}: reliability, ECE {summary['ece']:.4f}")
    top.legend(fontsize=7, loc="upper left")
    bottom.bar([b["low"] for b in bins], [b["count"] for b in bins], width=width, align="edge", color="gray")
    bottom.set(yscale="log", xlim=(0, 1), xlabel="confidence (top probability)", ylabel="images")
    return fig


def rejection_figure(summary: dict):
    points = summary["rejection"]
    fig, ax = pyplot().subplots(figsize=(5.6, 4.2), layout="constrained")
    ax.plot([p["answered"] for p in points], [p["accuracy"] for p in points], color="tab:blue")
    for p in points:
        if p["threshold"] in (0.5, 0.9, 0.99):
            ax.plot(p["answered"], p["accuracy"], "o", color="tab:orange")
            ax.annotate(f"threshold {p['threshold']:g}", (p["answered"], p["accuracy"]), fontsize=7,
                        xytext=(4, -10), textcoords="offset points")
    ax.set(xlabel="fraction answered (the rest is 'no digit')", ylabel="accuracy of the answers",
           title=f"{summary['name']}: rejection curve")
    ax.grid(alpha=0.3)
    return fig


def gallery_figure(evaluation: Evaluation, name: str):
    """The most confident mistakes as the model saw them (28x28, after preprocessing)."""
    order = mistakes(evaluation)[:GALLERY]
    cols = 6
    rows = max(1, -(-len(order) // cols))
    fig, axes = pyplot().subplots(rows, cols, figsize=(cols * 1.6, rows * 1.9 + 0.4), squeeze=False,
                                  layout="constrained")
    fig.suptitle(f"{name}: the {len(order)} most confident of {int((~evaluation.correct).sum())} mistakes")
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), order):
        ax.imshow(evaluation.data.pixels[i], cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"true {evaluation.data.labels[i]}, read {_answer_text(evaluation.predicted[i])}\n"
                     f"conf {evaluation.confidence[i]:.2f}  {Path(evaluation.data.names[i]).name[-16:]}", fontsize=7)
    if not len(order):
        axes[0, 0].text(0, 0.5, "no mistakes", fontsize=12)
    return fig


def explained_images(evaluation: Evaluation) -> list[int]:
    """Images worth explaining: the surest right answer, the surest mistake, the least sure answer."""
    found = evaluation.data.found
    confidence = np.where(found, evaluation.confidence, np.nan)
    picks = [np.nanargmax(np.where(mask, confidence, np.nan))
             for mask in (found & evaluation.correct, found & ~evaluation.correct) if mask.any()]
    if found.any():
        picks.append(np.nanargmin(confidence))
    return list(dict.fromkeys(int(i) for i in picks))[:EXPLAINED]


FIGURES: dict[str, Callable] = {"confusion": confusion_figure, "reliability": reliability_figure,
                                "rejection": rejection_figure}


# --------------------------------------------------------------------------------------------------
# Files


def write_report(evaluations: list[Evaluation], out_dir: str | Path, robustness: dict | None = None) -> dict:
    """Write every file of the report into `out_dir` and return what `--json` prints.

    One model: `confusion.png`, ...; several: the same files prefixed with each model's name.
    """
    out_dir = Path(out_dir)
    names = model_names([e.model.path for e in evaluations])
    summaries, images = [], []
    for evaluation, name in zip(evaluations, names):
        prefix = "" if len(evaluations) == 1 else f"{name}-"
        summary = summarize(evaluation, name)
        pngs = {kind: write_png(figure(summary), out_dir / f"{prefix}{kind}.png") for kind, figure in FIGURES.items()}
        pngs["mistakes"] = write_png(gallery_figure(evaluation, name), out_dir / f"{prefix}mistakes.png")
        write_json(out_dir / f"{prefix}confusion.json", {"rows": "true digit", "columns": summary["confusion_labels"],
                                                         "counts": summary["confusion"]})
        stages_of = explainer(evaluation.model.path)
        explained = []
        for k, i in enumerate(explained_images(evaluation), 1):
            title = (f"{name} reading {Path(evaluation.data.names[i]).name} (true {evaluation.data.labels[i]}, "
                     f"read {_answer_text(evaluation.predicted[i])})")
            explained.append(write_png(draw(stages_of(evaluation.data.pixels[i]), title),
                                       out_dir / f"{prefix}explain-{k}.png", dpi=80))
        summary["files"] = {**{kind: str(out_dir / f"{prefix}{kind}.png") for kind in pngs},
                            "confusion_json": str(out_dir / f"{prefix}confusion.json"),
                            "explanations": [str(out_dir / f"{prefix}explain-{k}.png")
                                             for k in range(1, len(explained) + 1)]}
        summaries.append(summary)
        images.append({**pngs, "explanations": explained})
    result = {"report": str(out_dir / "report.html"), "models": summaries}
    if robustness is not None:
        result["robustness"] = robustness
        write_json(out_dir / "robustness.json", robustness)
    write_json(out_dir / "summary.json", result)
    with atomic_write(out_dir / "report.html", "w") as f:
        f.write(_html(result, images))
    return result


# --------------------------------------------------------------------------------------------------
# Tables: the terminal and the HTML show the same rows


def _at_threshold(summary: dict, threshold: float) -> str:
    point = next((p for p in summary["rejection"] if abs(p["threshold"] - threshold) < 1e-9), None)
    return "none answered" if point is None else f"{point['answered']:.1%} answered, {point['accuracy']:.2%} right"


def _weakest(summary: dict) -> str:
    c = min(summary["per_class"], key=lambda c: c["recall"])
    return f"{c['class']} (recall {c['recall']:.1%})"


def _ms(p: dict | None) -> str:
    return "-" if p is None else f"{p['p50']:.2f} / {p['p99']:.2f} ms"


HEADLINE: list[tuple[str, Callable[[dict], str]]] = [
    ("images", lambda s: f"{s['n']:,}"),
    ("accuracy", lambda s: f"{s['accuracy']:.2%}"),
    ("95% interval (Wilson)", lambda s: "{:.2%} - {:.2%}".format(*s["accuracy_ci95"])),
    ("mistakes", lambda s: f"{s['n'] - s['correct']:,}" + (f" ({s['no_digit']:,} no digit)" if s["no_digit"] else "")),
    ("withheld ('no digit', best guess right / wrong)", lambda s: "{right:,} / {wrong:,}".format(**s["withheld"])),
    ("macro F1", lambda s: f"{s['macro_f1']:.4f}"),
    ("weakest digit", _weakest),
    ("calibration error (ECE)", lambda s: f"{s['ece']:.4f}"),
    (f"confidence >= {CONFIDENT}", lambda s: _at_threshold(s, CONFIDENT)),
    ("latency p50 / p99", lambda s: _ms(s["latency_ms"])),
    ("throughput", lambda s: "-" if s["images_per_second"] is None else f"{s['images_per_second']:,.0f} images/s"),
    ("preprocessing p50 / p99", lambda s: _ms(s["preprocess_ms"])),
]


def headline(summaries: list[dict]) -> list[tuple[str, list[str]]]:
    """(row name, one value per model) for the headline table."""
    rows = [(label, [value(s) for s in summaries]) for label, value in HEADLINE]
    return [(label, values) for label, values in rows if any(v != "-" for v in values)]


def robustness_rows(robustness: dict) -> list[tuple[str, list[str]]]:
    return [(row["corruption"], [f"{a:.2%}" for a in row["accuracy"]]) for row in robustness["rows"]]


def _columns(header: list[str], rows: list[tuple[str, list[str]]]) -> list[str]:
    """Aligned text rows (names left, values right), the header in bold."""
    widths = [max(len(header[0]), *(len(r[0]) for r in rows))]
    widths += [max(len(header[i + 1]), *(len(r[1][i]) for r in rows)) for i in range(len(header) - 1)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return [click.style(line(header), bold=True), *(line([name, *values]) for name, values in rows)]


def headline_lines(result: dict) -> list[str]:
    """The terminal view: headline table, robustness table if any, and where the report is."""
    summaries = result["models"]
    names = [s["name"] for s in summaries]
    lines = [click.style(f"{summaries[0]['data']}", dim=True), *_columns(["", *names], headline(summaries))]
    if "robustness" in result:
        lines += ["", *_columns(["accuracy under", *names], robustness_rows(result["robustness"]))]
    return [*lines, "", f"report: {click.style(result['report'], fg='cyan')}"]


# --------------------------------------------------------------------------------------------------
# HTML


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;padding:3px 10px}
td+td,th+th{text-align:right}th{background:#f4f4f4}.row{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
figure{margin:0}figcaption{font-size:.85em;color:#555}img{max-width:100%}.warn{color:#a33}"""


def _table(header: list[str], rows: list[tuple[str, list[str]]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in [name, *values]) + "</tr>"
                   for name, values in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode()
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _html(result: dict, images: list[dict]) -> str:
    summaries = result["models"]
    names = [s["name"] for s in summaries]
    measures = ("precision", "recall", "f1")
    per_class_header = ["digit", "images", *(f"{n} {m}" for n in names for m in measures)]
    per_class_rows = [(str(d), [str(summaries[0]["per_class"][d]["support"]),
                                *(f"{s['per_class'][d][m]:.3f}" for s in summaries for m in measures)])
                      for d in range(NUM_CLASSES)]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>digitcnn evaluation: "
             f"{html.escape(', '.join(names))}</title><style>{STYLE}</style></head><body>",
             f"<h1>Evaluation: {html.escape(' vs '.join(names))}</h1>",
             f"<p>Data: {html.escape(summaries[0]['data'])}. Models: "
             + ", ".join(f"<code>{html.escape(s['model'])}</code> ({s['format']})" for s in summaries) + "</p>",
             "<h2>Headline</h2>", _table(["", *names], headline(summaries)),
             "<p>The interval is Wilson's 95% score interval for the accuracy. ECE: expected calibration error over "
             "15 equal-width confidence bins. Latency: one image per call; throughput: batches of 500. Withheld: "
             "digits found that <code>predict</code> answers 'no digit', their calibrated confidence under the "
             "model's threshold; accuracy counts their best guess (top[0]).</p>"]
    skipped = summaries[0]["skipped"]
    if skipped:
        parts += [f"<h2 class='warn'>{len(skipped)} files left out</h2><ul>",
                  *(f"<li>{html.escape(m)}</li>" for m in skipped), "</ul>"]
    if "robustness" in result:
        parts += ["<h2>Robustness: accuracy on corrupted test digits</h2>",
                  f"<p>{result['robustness']['n']:,} images of {html.escape(result['robustness']['data'])}; "
                  "rows marked 'preprocessed' go through the same framing as <code>predict</code>.</p>",
                  _table(["corruption", *names], robustness_rows(result["robustness"]))]
    parts += ["<h2>Per digit</h2>", _table(per_class_header, per_class_rows)]
    sections = [("Confusion matrices", "confusion", "rows: true digit, columns: answer"),
                ("Calibration", "reliability", "accuracy against confidence, per confidence bin"),
                ("Rejection curves", "rejection", "accuracy of the answers kept as the confidence threshold rises"),
                ("Worst mistakes", "mistakes", "wrong answers, most confident first, as the model saw them")]
    for title, kind, caption in sections:
        parts += [f"<h2>{title}</h2><div class='row'>",
                  *(_figure(png[kind], f"{name}: {caption}") for name, png in zip(names, images)), "</div>"]
    parts.append("<h2>How the network reads a digit</h2><div class='row'>")
    for name, png in zip(names, images):
        parts += [_figure(p, f"{name}, image {k}: every layer from the pixels to the answer")
                  for k, p in enumerate(png["explanations"], 1)]
    parts.append("</div></body></html>")
    return "\n".join(parts)
