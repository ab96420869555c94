"""The phone page as people use it, in headless Chromium: a square pad on every screen (the ink under
the finger), the keyboard way in (Tab order, focus, the file picker), and axe-core's accessibility
check on the main view, during Teach and after it.

Skipped like tests/test_web.py when the browser is missing, except under CI=true or DIGITCNN_REQUIRE_BROWSER=1.
Set DIGITCNN_SCREENSHOTS=<folder> to keep a screenshot of each screen size there (docs/images holds them).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import pytest

from browser import ROOT, draw, REQUIRED, missing, serving, trace, wait_ready, wait_until
from strokes import ORDINARY, render

REASON = missing()
pytestmark = pytest.mark.skipif(bool(REASON) and not REQUIRED, reason=str(REASON))
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
# Phones upright, a small phone under its browser's bars, a phone on its side, two laptops.
SIZES = [(390, 844), (375, 553), (844, 390), (1280, 800), (1280, 600)]
CIRCLE = [[(0.5 + 0.3 * math.cos(t / 32 * 2 * math.pi), 0.5 + 0.3 * math.sin(t / 32 * 2 * math.pi)) for t in range(33)]]
# The ink's box on the pad's own pixels (white strokes on black): a circle drawn on a stretched pad is not square.
INK_BOX = """() => {
    const pad = document.getElementById('pad');
    const {data} = pad.getContext('2d').getImageData(0, 0, pad.width, pad.height);
    let [top, left, bottom, right] = [Infinity, Infinity, -1, -1];
    for (let y = 0; y < pad.height; y++) {
        for (let x = 0; x < pad.width; x++) {
            if (data[4 * (y * pad.width + x)] < 128) continue;
            [top, left, bottom, right] = [Math.min(top, y), Math.min(left, x), Math.max(bottom, y), Math.max(right, x)];
        }
    }
    return {width: right - left + 1, height: bottom - top + 1};
}"""


@pytest.fixture(scope="module")
def site(int8_model):
    with serving(int8_model) as url:
        yield url


def open_page(browser, url: str, width: int = 390, height: int = 844, **options):
    phone = width < 1000
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=2 if phone else 1,
                                  has_touch=phone, **options)
    page = context.new_page()
    # Playwright starts intercepting file pickers when a listener first appears, asynchronously: one added
    # only at expect_file_chooser can miss a picker opened at once. Listening from the start, none is missed.
    page.on("filechooser", lambda chooser: None)
    page.goto(url)
    wait_ready(page)
    return page


@pytest.mark.parametrize("width,height", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_pad_is_square_and_a_circle_stays_a_circle(browser, site, width, height):
    page = open_page(browser, site, width, height)
    box = page.locator("#pad").bounding_box()
    assert abs(box["width"] - box["height"]) <= 1, box
    assert box["width"] >= 0.6 * min(width, height), box  # and large: the most of the screen it can have
    assert box["y"] + box["height"] <= height and box["x"] + box["width"] <= width, box  # whole, without scrolling
    for control in ("#clear", "#photo-label", "#camera", "#teach"):  # the buttons are on screen too
        button = page.locator(control).bounding_box()
        assert button["y"] + button["height"] <= height, (control, button)
    answer = draw(page, CIRCLE, steps=2)
    ink = page.evaluate(INK_BOX)
    assert abs(ink["width"] - ink["height"]) <= 0.1 * max(ink["width"], ink["height"]), ink
    assert answer["digit"] == 0, answer
    if os.environ.get("DIGITCNN_SCREENSHOTS"):
        page.screenshot(path=Path(os.environ["DIGITCNN_SCREENSHOTS"]) / f"page-{width}x{height}.png")
    page.click("#teach")  # teaching adds a row of buttons: the pad stays square, and all is still on screen
    teaching = page.locator("#pad").bounding_box()
    done = page.locator("#done").bounding_box()
    assert abs(teaching["width"] - teaching["height"]) <= 1 and teaching["width"] >= 0.5 * min(width, height), teaching
    assert done["y"] + done["height"] <= height, done
    page.context.close()


def focused(page) -> str:
    return page.evaluate("document.activeElement.id")


def test_the_keyboard_reaches_every_control_and_reads_a_chosen_file(browser, site, tmp_path):
    page = open_page(browser, site, 1280, 800)
    order = []
    for _ in range(4):
        page.keyboard.press("Tab")
        order.append(focused(page))
    assert order == ["clear", "photo", "camera", "teach"], order
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    assert focused(page) == "photo"
    outline = page.evaluate("getComputedStyle(document.getElementById('photo-label')).outlineStyle")
    assert outline != "none"  # the focus shows on the button the input sits in
    digit = tmp_path / "seven.png"
    render(ORDINARY[7]).save(digit)
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(str(digit))
    wait_until(page, "window.digitcnn.latencies.length === 1")
    assert page.evaluate("window.digitcnn.answer.digit") == 7
    assert page.text_content("#digit") == "7"
    # Teach from the keyboard: focus goes to Next, then after Done to what was taught.
    for _ in range(2):
        page.keyboard.press("Tab")
    assert focused(page) == "teach"
    page.keyboard.press("Enter")
    assert focused(page) == "next" and "write 0" in page.text_content("#digit")
    with page.expect_file_chooser() as chooser:
        page.focus("#photo")
        page.keyboard.press("Enter")
    chooser.value.set_files(str(tmp_path / "seven.png"))  # a photo for the sample: kept by Next
    wait_until(page, "document.getElementById('confidence').textContent.includes('keep it')")
    page.focus("#done")
    page.keyboard.press("Enter")
    wait_until(page, "!window.digitcnn.teach.active && window.digitcnn.teach.samples === 1")
    assert focused(page) == "taught-heading"
    assert "Samples taught on this computer: 1." in page.text_content("#taught")  # a mouse: not "this phone"
    page.context.close()


def axe(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("axe.run(document, {resultTypes: ['violations']}).then((r) => r.violations)")
    return [{"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
            for v in found if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_axe_finds_nothing_serious_before_during_and_after_teach(browser, site, lang):
    page = open_page(browser, f"{site}/?lang={lang}", bypass_csp=True)  # axe is injected: the CSP would refuse it
    assert page.evaluate("document.documentElement.lang") == lang
    assert axe(page) == []
    draw(page, ORDINARY[7])
    assert axe(page) == []
    page.click("#teach")
    assert axe(page) == []
    for digit in (0, 1):
        for stroke in ORDINARY[digit]:
            trace(page, stroke)
        page.click("#next")
    for stroke in ORDINARY[2]:
        trace(page, stroke)
    page.click("#done")
    wait_until(page, "window.digitcnn.teach.samples === 3")
    page.click("#samples-title")  # the list of samples, open
    assert axe(page) == []
    page.click("#forget")
    assert page.is_visible("#forget-dialog")
    assert axe(page) == []
    if lang == "zh-CN":  # every word on screen translated: only names and formats stay in Latin letters
        words = set(re.findall(r"[A-Za-z]{2,}", page.evaluate("document.body.innerText")))
        names = page.evaluate("""[document.getElementById('model-name')?.innerText ?? '',
            ...Array.from(document.querySelectorAll('#lang option'), (option) => option.text)].join(' ')""")
        assert words <= {"digitcnn"} | set(re.findall(r"[A-Za-z]{2,}", names)), words  # the model's, the languages'
    page.context.close()


def test_the_page_speaks_plain_words_and_says_why_a_control_cannot_work(browser, site, tmp_path):
    """Nothing is claimed before anything is drawn; a file that is no picture clears the old answer and
    is announced; the 28x28 preview has a visible caption."""
    page = open_page(browser, site)
    assert page.evaluate("import('/i18n.js').then((i18n) => i18n.missingKeys())") == {"zh-CN": [], "en": []}
    assert page.get_attribute("#photo", "capture") is None  # phones offer the gallery as well as the camera
    assert page.text_content("#digit") == "" and page.text_content("#confidence") == "draw a digit"
    assert page.is_visible("figcaption") and "model sees" in page.text_content("figcaption")
    assert "this phone" in page.text_content("#status")
    draw(page, ORDINARY[7])
    assert page.text_content("#digit") == "7" and "sure" in page.text_content("#confidence")
    page.evaluate("import('/i18n.js').then((i18n) => i18n.setLocale('zh-CN'))")  # as the language switch does
    assert "把握" in page.text_content("#confidence") and "手机" in page.text_content("#status")
    assert page.text_content("#clear") == "清除"
    page.evaluate("import('/i18n.js').then((i18n) => i18n.setLocale('en'))")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a picture")
    page.set_input_files("#photo", str(broken))
    wait_until(page, "window.digitcnn.error !== null")
    assert page.get_attribute("#error", "role") == "alert" and "picture" in page.text_content("#error")
    assert page.text_content("#digit") == "" and page.evaluate("window.digitcnn.answer") is None
    page.click("#clear")
    assert page.text_content("#error") == ""
    page.context.close()
