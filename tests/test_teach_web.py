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

from browser import PHONE, chromium, draw, REQUIRED, missing, serving, trace, wait_ready, wait_until
from conftest import run_cli
from edge import metadata as md
from edge.adapt import Adapter, review
from edge.preprocess import to_mnist
from edge.runner import DigitModel
from strokes import CONTINENTAL, ORDINARY, jittered

REASON = missing()
pytestmark = pytest.mark.skipif(bool(REASON) and not REQUIRED, reason=str(REASON))
ROUNDS = 3


@pytest.fixture(scope="module")
def browser():
    if REASON:
        pytest.fail(f"the browser tests must run here (CI or DIGITCNN_REQUIRE_BROWSER=1), but {REASON}")
    with chromium() as b:
        yield b


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
    return draw(page, strokes)["digit"]


def teach(page, hand: dict, seed: int = 0, skip: tuple[int, ...] = (), slips: dict | None = None) -> dict:
    """Goes through Teach as a user: each digit asked for is drawn in `hand` (or skipped), then Next.
    `slips` maps (round, digit) to what the user draws instead, by mistake."""
    rng = np.random.default_rng(seed)
    page.click("#teach")
    for n in range(ROUNDS * 10):
        digit = page.evaluate("window.digitcnn.teach.digit")
        assert f"write {digit}" in page.text_content("#digit")
        if digit in skip:
            page.click("#skip")
            continue
        for stroke in jittered((slips or {}).get((n // 10, digit), hand[digit]), rng):
            trace(page, stroke)
        page.click("#next")
    wait_until(page, "!window.digitcnn.teach.active && window.digitcnn.teach.adapted")
    return page.evaluate("window.digitcnn.teach")


@pytest.fixture(scope="module")
def taught(browser, site, tmp_path_factory):
    """A phone context taught a continental hand once; its page, what it said, and its samples exported."""
    context = browser.new_context(**PHONE, accept_downloads=True)
    page = open_page(context, site)
    rng = np.random.default_rng(42)
    before = [read(page, jittered(CONTINENTAL[7], rng)) for _ in range(4)]  # crossed 7s
    state = teach(page, CONTINENTAL)
    with page.expect_download() as download:
        page.click("#export")
    exported = tmp_path_factory.mktemp("exported") / "samples.zip"
    download.value.save_as(exported)
    yield context, page, before, state, exported
    context.close()


def test_the_page_learns_a_hand_and_still_reads_ordinary_digits(taught, site):
    context, page, before, state, _ = taught
    assert sum(d != 7 for d in before) >= 2, before  # the base model misreads this hand's crossed 7s
    assert state["samples"] == ROUNDS * 10 and state["source"] == "this phone" and state["issues"] == []
    assert "adapted model" in page.text_content("#taught")
    rng = np.random.default_rng(5)  # new drawings, not the samples
    for digit in (1, 7):
        for _ in range(3):
            assert read(page, jittered(CONTINENTAL[digit], rng)) == digit
    assert [read(page, jittered(ORDINARY[d], rng)) for d in range(10)] == list(range(10))
    assert page.evaluate("window.digitcnn.model") == "adapted" and "adapted model" in page.text_content("#status")
    # The samples stay in this browser: a new page in the same context is adapted at once...
    again = open_page(context, site)
    assert again.evaluate("window.digitcnn.teach.adapted") and read(again, CONTINENTAL[1]) == 1
    again.close()


def test_forget_brings_back_the_base_model(browser, site):
    context = browser.new_context(**PHONE)
    page = open_page(context, site)
    teach(page, CONTINENTAL, seed=1)
    assert read(page, CONTINENTAL[7]) == 7
    page.click("#forget")
    wait_until(page, "!window.digitcnn.teach.adapted")
    assert read(page, CONTINENTAL[7]) != 7 and page.evaluate("window.digitcnn.model") == "base"
    assert "base model" in page.text_content("#taught") and page.is_hidden("#forget")
    assert kept_samples(page) == []
    context.close()


def test_the_page_says_which_digits_it_was_not_taught_and_which_sample_looks_wrong(browser, site):
    context = browser.new_context(**PHONE)
    page = open_page(context, site)
    state = teach(page, ORDINARY, skip=(3,), slips={(1, 6): ORDINARY[0]})  # once asked for a 6, a 0 is drawn
    kinds = [(i["kind"], i["digit"]) for i in state["issues"]]
    assert ("missing", 3) in kinds and ("unlike", 6) in kinds, kinds
    says = page.text_content("#taught")
    assert "digit 3: no samples" in says and "digit 6: sample" in says and "reads as 0" in says
    context.close()


def test_page_and_python_adapt_alike(taught, int8_model, tmp_path, mnist_npz):
    """The exported samples, taught in Python, give the page's adaptation; both adapt answers alike."""
    _, page, _, state, exported = taught
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
