"""The page's Inside view in headless Chromium: every number it shows is the Python runner's for the same
28x28 digit (int8 exactly), its arithmetic adds up, and it works for people (reduced motion, axe-core,
Chinese). Skipped like tests/test_web.py when the browser is missing, except under CI=true or
DIGITCNN_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pytest

from browser import PHONE, ROOT, STROKES, draw, REQUIRED, missing, serving, wait_ready, wait_until
from conftest import run_cli
from edge.inside import Inside
from edge.runner import DigitModel
from edge.shipped import SHIPPED_MODEL
from strokes import ORDINARY
from test_teach_web import read, teach

REASON = missing()
pytestmark = pytest.mark.skipif(bool(REASON) and not REQUIRED, reason=str(REASON))
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(scope="module")
def site():
    with serving(SHIPPED_MODEL) as url:
        yield url


@pytest.fixture(scope="module")
def inside() -> Inside:
    return Inside(DigitModel(SHIPPED_MODEL))


def open_inside(browser, site, digit: int = 4, **options):
    """A phone page that read `digit` as drawn, with Inside open and up to date."""
    context = browser.new_context(**{**PHONE, **options})
    page = context.new_page()
    page.goto(site)
    wait_ready(page)
    draw(page, STROKES[digit])
    page.click("#inside-open")
    wait_until(page, "window.digitcnn.inside.ready")
    return page


@pytest.fixture(scope="module")
def page(browser, site):
    page = open_inside(browser, site)
    yield page
    page.context.close()


def test_every_stage_is_the_python_runners_int8(page, inside):
    shown = page.evaluate("window.digitcnn.inside")
    pixels = np.array(shown["pixels"], np.uint8).reshape(28, 28)
    expected = inside.stored(pixels)
    assert set(shown["stages"]) == set(expected) and len(expected) == len(inside.specs)
    for name, values in expected.items():
        assert shown["stages"][name] == values.ravel().tolist(), name
    assert shown["multiplyAdds"] == inside.multiply_adds()
    # The last stage, calibrated as the answer is, is the answer's probabilities.
    answer = page.evaluate("window.digitcnn.answer")
    assert [[d, round(shown["probabilities"][d], 4)] for d, _ in answer["top"]] == answer["top"]
    assert int(np.argmax(shown["probabilities"])) == answer["digit"]


def test_the_arithmetic_at_a_tapped_position_adds_up_to_the_map(page, inside):
    target = page.locator("#inside .fact .map").first
    target.scroll_into_view_if_needed()
    box = target.bounding_box()
    oh, ow = inside.specs[0]["shape"][1:3]
    y, x = 6, 8
    page.mouse.click(box["x"] + (x + 0.5) * box["width"] / ow, box["y"] + (y + 0.5) * box["height"] / oh)
    page.keyboard.press("ArrowRight")  # the map has focus: the keys move the light
    shown = page.evaluate("window.digitcnn.inside.arithmetic")
    assert (shown["y"], shown["x"]) == (y, x + 1)
    pixels = np.array(page.evaluate("window.digitcnn.inside.pixels"), np.uint8).reshape(28, 28)
    python = inside.arithmetic(pixels, y, x + 1, shown["filter"])
    assert np.sum(shown["products"]) == pytest.approx(shown["sum"], abs=1e-9)
    assert shown["sum"] + shown["bias"] == pytest.approx(shown["total"], abs=1e-9)
    assert shown["activated"] == pytest.approx(max(shown["total"], 0), abs=1e-12)
    assert shown["requantized"] == shown["stored"] == shown["mapValue"] == python["stored"]
    assert np.allclose(shown["products"], python["products"], atol=1e-6)
    assert not page.evaluate("window.digitcnn.inside.animating")  # a tap stops the light there


def test_the_pooled_value_is_the_max_of_its_block(page, inside):
    pool = page.evaluate("window.digitcnn.inside.pool")
    pixels = np.array(page.evaluate("window.digitcnn.inside.pixels"), np.uint8).reshape(28, 28)
    source = inside.stored(pixels)[pool["source"]]
    y, x, c = pool["y"], pool["x"], pool["channel"]
    assert pool["block"] == source[2 * y:2 * y + 2, 2 * x:2 * x + 2, c].ravel().tolist()
    assert pool["kept"] == max(pool["block"]) == inside.stored(pixels)[pool["layer"]][y, x, c]


def test_the_sobel_panel_is_an_independent_convolution(page):
    shown = np.array(page.evaluate("window.digitcnn.inside.sobel")).reshape(28, 28)
    image = np.pad(np.array(page.evaluate("window.digitcnn.inside.pixels"), np.float64).reshape(28, 28) / 255, 1)
    kernel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    windows = np.lib.stride_tricks.sliding_window_view(image, (3, 3))
    assert np.allclose(shown, np.einsum("yxij,ij->yx", windows, kernel), atol=1e-5)
    assert np.abs(shown).max() > 1  # the digit has edges


def test_reduced_motion_stops_the_flashlight(browser, site, page):
    assert page.evaluate("window.digitcnn.inside.animating") is False  # stopped by the tap above
    still = open_inside(browser, site, reduced_motion="reduce")
    try:
        assert still.evaluate("window.digitcnn.inside.animating") is False
        assert still.is_disabled("#inside .controls button")
    finally:
        still.context.close()


def axe_violations(page, selector: str) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(f"""async () => (await axe.run(document.querySelector({selector!r}))).violations
        .filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => v.id + ': ' + v.help)""")
    return found


def test_axe_finds_nothing_serious_on_the_main_and_inside_views(browser, site):
    page = open_inside(browser, site, bypass_csp=True)
    try:
        assert axe_violations(page, "main") == []
        assert axe_violations(page, "#inside") == []
    finally:
        page.context.close()


def test_in_chinese_every_string_is_translated_and_inside_reads_chinese(browser, site):
    page = open_inside(browser, site, locale="zh-CN")
    try:
        assert page.evaluate("document.documentElement.lang") == "zh-CN"
        missing_keys = page.evaluate("import('./i18n.js').then((m) => m.missingKeys())")
        assert missing_keys == {"zh-CN": [], "en": []}
        english = page.evaluate("import('./strings/inside.js').then((m) => Object.values(m.default.en))")
        visible = page.inner_text("#inside")
        assert len(re.findall(r"[\u4e00-\u9fff]", visible)) > 500
        phrases = [max(re.split(r"\{\w+\}", s), key=len).strip() for s in english]  # the words between slots
        leftovers = [p for p in phrases if len(p) > 8 and p in visible]
        assert leftovers == []
        page.select_option("#lang", "en")  # the switch: back to English, kept for the next visit
        assert "A picture is a matrix" in page.inner_text("#inside")
        page.reload()
        wait_ready(page)
        assert page.evaluate("document.documentElement.lang") == "en"
    finally:
        page.context.close()


def test_after_teach_stage_6_shows_teachs_adapted_model(browser, site, tmp_path):
    """Teach in the page, teach the exported samples in Python: Inside's adapted outputs are Python's."""
    context = browser.new_context(**PHONE, accept_downloads=True)
    try:
        page = context.new_page()
        page.goto(site)
        wait_ready(page)
        teach(page, ORDINARY, rounds=1)  # a round is enough for an adaptation to compare
        with page.expect_download() as download:
            page.click("#export")
        with zipfile.ZipFile(download.value.path()) as zf:
            zf.extractall(tmp_path / "samples")
        read(page, STROKES[7])  # after Done the page shows the summary: back to a cleared pad
        page.click("#inside-open")
        wait_until(page, "window.digitcnn.inside.ready && window.digitcnn.inside.adapted !== null")
        shown = page.evaluate("window.digitcnn.inside")
        taught = tmp_path / "taught.tflite"
        run_cli("teach", str(tmp_path / "samples"), "--model", str(SHIPPED_MODEL), "--out", str(taught))
        pixels = np.array(shown["pixels"], np.uint8).reshape(1, 28, 28)
        assert np.allclose(shown["adapted"]["adapted"], DigitModel(taught).probabilities(pixels)[0], atol=1e-6)
        assert np.allclose(shown["adapted"]["base"], DigitModel(SHIPPED_MODEL).probabilities(pixels)[0], atol=1e-6)
        answer = page.evaluate("window.digitcnn.answer")  # the page answers with the adapted model
        assert int(np.argmax(shown["adapted"]["adapted"])) == answer["digit"]
    finally:
        context.close()
