"""Teaching the phone page: it learns a hand the base model misreads and still reads ordinary digits,
keeps the samples in the browser until "Forget", and adapts exactly as `teach` does in Python.

Skipped like tests/test_web.py when the browser is missing, except under CI=true or DIGITCNN_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from browser import PHONE, draw, REQUIRED, missing, serving, trace, wait_ready, wait_until
from conftest import run_cli
from edge import metadata as md
from edge.adapt import Adapter, review
from edge.preprocess import to_mnist
from edge.runner import DigitModel
from strokes import CONTINENTAL, ORDINARY, jittered, render

REASON = missing()
pytestmark = pytest.mark.skipif(bool(REASON) and not REQUIRED, reason=str(REASON))
ROUNDS = 3


@pytest.fixture(scope="module")
def site(int8_model):
    with serving(int8_model) as url:
        yield url


def open_page(context, url: str):
    page = context.new_page()
    page.goto(url)
    wait_ready(page)
    return page


def kept_samples(page) -> list[dict]:
    """The samples the page keeps in this browser (web/store.js, IndexedDB), pixels as lists."""
    return page.evaluate("""async () => (await (await import('/store.js')).loadSamples())
        .map(({digit, pixels}) => ({digit, pixels: Array.from(pixels)}))""")


def read(page, strokes) -> int | None:
    page.click("#clear")
    page.evaluate("window.scrollTo(0, 0)")  # back to the pad, from the summary Done scrolled to
    return draw(page, strokes, steps=1)["digit"]  # one move per point, as teach() draws


def teach(page, hand: dict, seed: int = 0, skip: tuple[int, ...] = (), slips: dict | None = None,
          photo: int | None = None, tmp_path=None, rounds: int = ROUNDS) -> dict:
    """Goes through Teach as a user: each digit asked for is drawn in `hand` (or skipped), then Next;
    the last one of `rounds` is drawn, then Done (before the page's last round if `rounds` is fewer).
    `slips` maps (round, digit) to what the user draws instead, by mistake. The `photo`-th sample asked
    for comes as a photo (a file in `tmp_path`) instead of a drawing.

    One pointer move per point of a stroke: the pad draws a straight line between moves, so the
    samples are the same lines as with more moves, at a sixth of the browser round trips."""
    rng = np.random.default_rng(seed)
    page.click("#teach")
    for n in range(rounds * 10):
        digit = page.evaluate("window.digitcnn.teach.digit")
        assert f"write {digit}" in page.text_content("#digit")
        if digit in skip:
            page.click("#skip")
            continue
        strokes = jittered((slips or {}).get((n // 10, digit), hand[digit]), rng)
        if n == photo:
            render(strokes).save(tmp_path / "sample.png")
            page.set_input_files("#photo", str(tmp_path / "sample.png"))
            wait_until(page, "document.getElementById('confidence').textContent.includes('keep it')")
            assert f"write {digit}" in page.text_content("#digit")  # the photo is not read: the prompt stays
        else:
            for stroke in strokes:
                trace(page, stroke, steps=1)
        page.click("#done" if n == rounds * 10 - 1 else "#next")  # Done keeps the digit on the pad
    wait_until(page, "!window.digitcnn.teach.active && window.digitcnn.teach.adapted")
    return page.evaluate("window.digitcnn.teach")


@pytest.fixture(scope="module")
def taught(browser, site, tmp_path_factory):
    """A phone context taught a continental hand once; its page, what it said, and its samples exported."""
    context = browser.new_context(**PHONE, accept_downloads=True)
    page = open_page(context, site)
    rng = np.random.default_rng(42)
    before = [read(page, jittered(CONTINENTAL[7], rng)) for _ in range(4)]  # crossed 7s
    state = teach(page, CONTINENTAL, photo=5, tmp_path=tmp_path_factory.mktemp("photo"))
    after = {"status": page.text_content("#status"), "focus": page.evaluate("document.activeElement.id")}  # after Done
    with page.expect_download() as download:
        page.click("#export")
    exported = tmp_path_factory.mktemp("exported") / "samples.zip"
    download.value.save_as(exported)
    yield context, page, before, state, exported, after
    context.close()


def test_the_page_learns_a_hand_and_still_reads_ordinary_digits(taught, site):
    context, page, before, state, _, after = taught
    assert sum(d != 7 for d in before) >= 2, before  # the base model misreads this hand's crossed 7s
    # Every sample given was kept: the photo, and the last digit on the pad when Done was pressed.
    assert state["samples"] == ROUNDS * 10 and state["source"] == "browser" and state["issues"] == []
    assert "taught your writing" in after["status"]  # the status line says what the panel says
    assert "Samples taught on this phone: 30." in page.text_content("#taught")
    assert after["focus"] == "taught-heading"
    assert 7 in [change["digit"] for change in state["differently"]], state["differently"]
    assert "Now it reads your" in page.text_content("#differently") and "7" in page.text_content("#differently")
    rng = np.random.default_rng(5)  # new drawings, not the samples
    for digit in (1, 7):
        for _ in range(3):
            assert read(page, jittered(CONTINENTAL[digit], rng)) == digit
    assert [read(page, jittered(ORDINARY[d], rng)) for d in range(10)] == list(range(10))
    assert page.evaluate("window.digitcnn.model") == "adapted" and "taught model" in page.text_content("#status")
    # The samples stay in this browser: a new page in the same context is adapted at once...
    again = open_page(context, site)
    assert again.evaluate("window.digitcnn.teach.adapted") and read(again, CONTINENTAL[1]) == 1
    again.close()


def test_clear_keeps_the_prompt_and_forget_asks_first(browser, site):
    context = browser.new_context(**PHONE)
    page = open_page(context, site)
    page.click("#teach")
    trace(page, CONTINENTAL[1][0])
    page.click("#clear")  # a slip, wiped: the user still knows what to write
    assert "write 0" in page.text_content("#digit") and page.evaluate("window.digitcnn.teach.digit") == 0
    page.click("#next")  # nothing on the pad: asked again, nothing kept
    assert "write 0" in page.text_content("#digit") and "nothing on the pad" in page.text_content("#confidence")
    page.click("#done")
    wait_until(page, "!window.digitcnn.teach.active")
    teach(page, CONTINENTAL, seed=1, rounds=1)  # Done after one round: ten samples
    assert read(page, CONTINENTAL[7]) == 7
    page.click("#forget")
    assert page.is_visible("#forget-dialog") and "10 samples" in page.text_content("#forget-ask")
    page.click("#forget-no")  # asked, and kept
    assert page.is_hidden("#forget-dialog") and page.evaluate("window.digitcnn.teach.samples") == 10
    page.click("#forget")
    page.click("#forget-yes")
    wait_until(page, "!window.digitcnn.teach.adapted")
    assert page.evaluate("document.activeElement.id") == "teach"
    assert read(page, CONTINENTAL[7]) != 7 and page.evaluate("window.digitcnn.model") == "base"
    assert "Teach shows it your writing" in page.text_content("#taught") and page.is_hidden("#forget")
    assert kept_samples(page) == []
    context.close()


def test_a_sample_that_looks_wrong_can_be_seen_relabelled_and_removed(browser, site, tmp_path):
    """The page names the digits it was not taught and a sample unlike its label, by the name the zip
    gives it; relabelling and removing samples changes the adaptation and the exported zip."""
    context = browser.new_context(**PHONE, accept_downloads=True)
    page = open_page(context, site)
    state = teach(page, ORDINARY, skip=(3,), slips={(1, 6): ORDINARY[0]})  # once asked for a 6, a 0 is drawn
    kinds = [(i["kind"], i["digit"]) for i in state["issues"]]
    assert ("missing", 3) in kinds and ("unlike", 6) in kinds, kinds
    (slip,) = [i for i in state["issues"] if i["kind"] == "unlike"]
    name = state["names"][slip["index"]]
    assert name == "6_02"  # the second 6 given, as the zip calls it
    says = page.text_content("#issues")
    assert "No samples of 3:" in says and f"sample {name} reads as 0" in says
    page.click("#samples-title")
    flagged = page.locator("#samples li.flagged")
    assert flagged.count() == 1 and "reads as 0" in flagged.text_content()
    assert len(state["labels"]) == 27
    page.select_option(f"#samples select[data-index='{slip['index']}']", "0")  # it was a 0: relabelled
    wait_until(page, f"window.digitcnn.teach.labels[{slip['index']}] === 0")
    state = page.evaluate("window.digitcnn.teach")
    assert ("unlike", 6) not in [(i["kind"], i["digit"]) for i in state["issues"]]
    assert ("few", 6) in [(i["kind"], i["digit"]) for i in state["issues"]]
    page.click("#samples button.remove >> nth=0")  # the first sample, a 0, removed
    wait_until(page, "window.digitcnn.teach.samples === 26")
    assert page.evaluate("document.activeElement.className") == "remove"
    kept = kept_samples(page)
    with page.expect_download() as download:
        page.click("#export")
    download.value.save_as(tmp_path / "samples.zip")
    with zipfile.ZipFile(tmp_path / "samples.zip") as zf:
        names = zf.namelist()
        assert len(names) == 26 and sum(n.startswith("0_") for n in names) == 3 and sum(n.startswith("6_") for n in names) == 2
        for n, sample in enumerate(kept):
            number = sum(s["digit"] == sample["digit"] for s in kept[:n + 1])
            png = Image.open(zf.open(f"{sample['digit']}_{number:02d}.png"))
            assert np.array_equal(np.asarray(png), np.array(sample["pixels"], np.uint8).reshape(28, 28))
    context.close()


def test_page_and_python_adapt_alike(taught, int8_model, tmp_path, mnist_npz):
    """The exported samples, taught in Python, give the page's adaptation; both adapt answers alike."""
    _, page, _, state, exported, _ = taught
    folder = tmp_path / "samples"
    with zipfile.ZipFile(exported) as zf:
        assert zf.testzip() is None and len(zf.namelist()) == ROUNDS * 10
        zf.extractall(folder)
    kept = kept_samples(page)
    for n, sample in enumerate(kept):  # the PNGs hold exactly the page's samples, which Python reads as they are
        name = folder / f"{sample['digit']}_{sum(s['digit'] == sample['digit'] for s in kept[:n + 1]):02d}.png"
        pixels = np.array(sample["pixels"], np.uint8).reshape(28, 28)
        assert Image.open(name).mode == "L" and np.array_equal(to_mnist(Image.open(name)), pixels), name
    out = tmp_path / "taught.tflite"
    run_cli("teach", str(folder), "--model", str(int8_model), "--out", str(out))
    python, page_side = md.load_metadata(out)["adaptation"], state["adaptation"]
    assert python["samples"] == page_side["samples"] and python["center"] == page_side["center"]
    gap = np.abs(np.array(python["weights"]) - np.array(page_side["weights"])).max()
    print(f"page vs Python adaptation: max weight difference {gap:.2e}")
    assert gap < 1e-9
    # The same answers from the same outputs: adapted probabilities in the page and in Python.
    with np.load(mnist_npz) as d:
        outputs = DigitModel(int8_model).outputs(d["x_test"][:20])
    in_page = page.evaluate("""async ([adaptation, probabilities, features]) => {
        const {apply} = await import('/adapt.js');
        return probabilities.map((p, i) => Array.from(apply(adaptation, p, features[i])));
    }""", [page_side, outputs["probabilities"].tolist(), outputs["features"].tolist()])
    in_python = Adapter(python)(outputs["probabilities"], outputs["features"])
    assert np.abs(np.array(in_page) - in_python).max() < 1e-6
    # And the same review of the same samples.
    model = DigitModel(int8_model)
    pixels = np.stack([to_mnist(Image.open(folder / name)) for name in sorted(os.listdir(folder))])
    labels = np.array([int(name[0]) for name in sorted(os.listdir(folder))])
    found = model.outputs(pixels)
    issues = page.evaluate("""async ([features, labels, probabilities, meta]) => {
        const {review} = await import('/adapt.js');
        return review(features, labels, probabilities, meta);
    }""", [found["features"].tolist(), labels.tolist(), found["probabilities"].tolist(), model.meta])
    assert issues == review(found["features"], labels, found["probabilities"], model.meta)
