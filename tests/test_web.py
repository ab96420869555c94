"""The phone page in headless Chromium: drawing, a photo, the server fallback, and the JS preprocessing.

Skipped with the reason when Chromium, Playwright or `npm ci`'s node_modules are missing, except
under CI=true or DIGITCNN_REQUIRE_BROWSER=1 (tests/browser.py REQUIRED), where that is a failure.
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from browser import PHONE, STROKES, chromium, draw, REQUIRED, missing, serving, wait_ready, wait_until
from conftest import run_cli
from edge.preprocess import NoDigit, to_mnist
from edge.runner import DigitModel
from negatives import photograph, shape
from shadowed import render
from edge.preprocess.filters import median_filter
from test_preprocess import (SHADOW_EDGES, SHADOWED_OVER_HALF, drawing, faint_pen_page, marker_photo, median_cases, render_page,
                             render_photo, scan_in_pieces)


REASON = missing()
pytestmark = pytest.mark.skipif(bool(REASON) and not REQUIRED, reason=str(REASON))


@pytest.fixture(scope="module")
def browser():
    if REASON:
        pytest.fail(f"the browser tests must run here (CI or DIGITCNN_REQUIRE_BROWSER=1), but {REASON}")
    # A test camera, and phone.test: the same server under a name that is not a secure origin.
    with chromium("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                  "--host-resolver-rules=MAP phone.test 127.0.0.1") as b:
        yield b


@pytest.fixture(scope="module")
def site(int8_model):
    with serving(int8_model) as url:
        yield url


@pytest.fixture
def phone(browser, site):
    """A fresh phone-sized page on the site; its requests' URLs and its responses are recorded.

    The server's Content-Security-Policy applies (no bypass): the test fails on any violation the
    console reports.
    """
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.requested, page.responses, console = [], [], []
    page.on("request", lambda request: page.requested.append(request.url))
    page.on("response", lambda response: page.responses.append(response))
    page.on("console", lambda message: console.append(message.text))
    yield page
    context.close()
    violations = [text for text in console if "content security policy" in text.lower()]
    assert violations == [], violations


@pytest.fixture(scope="module")
def mnist(mnist_npz):
    with np.load(mnist_npz) as d:
        return d["x_test"][:12], d["y_test"][:12]


def open_page(page, url: str) -> None:
    page.goto(url)
    wait_ready(page)


def test_drawn_digit_is_read_in_the_browser(phone, site, tmp_path):
    open_page(phone, site)
    assert phone.evaluate("window.digitcnn.path") is None
    first = draw(phone, STROKES[7][:1])  # the bar alone: read at once, whatever it looks like
    answer = draw(phone, STROKES[7][1:])
    assert phone.evaluate("window.digitcnn.latencies.length") == 2 and "digit" in first
    assert answer["digit"] == 7, answer
    assert phone.evaluate("window.digitcnn.path") == "browser"
    assert "read on this phone" in phone.text_content("#status")
    assert phone.text_content("#digit") == "7" and len(phone.locator("#top li").all()) == 3
    assert all(url.startswith(site) for url in phone.requested), phone.requested
    (wasm,) = [r for r in phone.responses if r.url.endswith(".wasm")]
    assert wasm.headers["content-type"] == "application/wasm" and wasm.headers["content-encoding"] == "gzip"
    shot = tmp_path / "phone.png"
    phone.screenshot(path=shot, full_page=True)
    print(f"phone screenshot: {shot}")
    phone.click("#clear")
    assert phone.text_content("#digit") == "" and phone.text_content("#confidence") == "draw a digit"


def test_photo_upload_is_read_like_predict_does(phone, site, int8_model, mnist, tmp_path):
    x, y = mnist
    photo = tmp_path / "photo.jpg"
    render_photo(x[0], np.random.default_rng(1), side=320, jpeg=False).save(photo, quality=90)
    expected = json.loads(run_cli("predict", str(int8_model), str(photo), "--json").stdout)
    open_page(phone, site)
    phone.set_input_files("#photo", str(photo))
    wait_until(phone, "window.digitcnn.latencies.length === 1")
    state = phone.evaluate("window.digitcnn")
    assert state["path"] == "browser" and state["error"] is None
    assert state["answer"]["digit"] == expected["digit"] == y[0]
    seen = np.array(state["pixels"]).reshape(28, 28)
    python = to_mnist(Image.open(photo))
    diff = int(np.abs(seen - python.astype(int)).max())
    print(f"photo: browser vs Python 28x28, max diff {diff} (JPEG decoded by each)")
    assert diff <= 1, f"browser and Python see this photo differently: max difference {diff} gray levels"
    assert all(url.startswith(site) for url in phone.requested)


def test_server_answers_when_the_browser_cannot(phone, site):
    phone.route("**/*.wasm", lambda route: route.abort())  # no WebAssembly runtime: LiteRT.js cannot load
    open_page(phone, site)
    assert "cannot run the model" in phone.text_content("#status")
    by_server = draw(phone, STROKES[7])
    assert phone.evaluate("window.digitcnn.path") == "server"
    assert "read by the server" in phone.text_content("#status")
    assert set(by_server) == {"file", "digit", "confidence", "top"} and by_server["digit"] == 7, by_server
    phone.unroute("**/*.wasm")
    open_page(phone, site)
    by_browser = draw(phone, STROKES[7])
    assert phone.evaluate("window.digitcnn.path") == "browser"
    assert {**by_browser, "file": by_server["file"]} == by_server  # same pixels, same model: same answer


def test_the_models_rule_decides_no_digit_in_the_page_as_in_python(phone, site, int8_model, unsure_model):
    """A model whose metadata holds another rule (edge/confidence.py; here temperature 3, threshold 0.6:
    every digit withheld) changes the page's answer as it changes Python's, for the same pixels, in the
    browser and through the server; the best guess stays top[0]."""
    seen = {}
    with serving(unsure_model) as unsure_site:
        for model, url in ((int8_model, site), (unsure_model, unsure_site), (unsure_model, f"{unsure_site}/?server")):
            open_page(phone, url)
            answer = draw(phone, STROKES[7])
            pixels = np.array(phone.evaluate("window.digitcnn.pixels"), np.uint8).reshape(28, 28)
            python = DigitModel(model).read(pixels[None])[0].as_json()
            assert answer["digit"] == python["digit"], (url, answer, python)
            assert answer["confidence"] == pytest.approx(python["confidence"], abs=1e-4)
            assert [d for d, _ in answer["top"]] == [d for d, _ in python["top"]]
            assert [p for _, p in answer["top"]] == pytest.approx([p for _, p in python["top"]], abs=1e-4)
            seen[url] = answer
            path = phone.evaluate("window.digitcnn.path")
            assert path == ("server" if url.endswith("?server") else "browser")
    usual, unsure, by_server = seen.values()
    assert usual["digit"] == 7 and unsure["digit"] is None and by_server["digit"] is None
    assert unsure["top"][0][0] == by_server["top"][0][0] == 7
    assert phone.text_content("#digit") == "?" and "not sure" in phone.text_content("#confidence")


def test_live_camera_is_read_on_a_secure_origin(phone, site):
    """localhost counts as secure, so getUserMedia works; Chromium's fake camera shows no digit."""
    open_page(phone, site)
    assert phone.is_hidden("#note")  # the "needs https" note is for insecure origins only
    phone.click("#camera")
    wait_until(phone, "window.digitcnn.latencies.length >= 2")
    assert phone.is_visible("#video") and phone.text_content("#camera-text") == "Stop"
    assert phone.evaluate("window.digitcnn.path") == "browser" and phone.evaluate("window.digitcnn.error") is None
    phone.click("#camera")
    assert phone.is_visible("#pad") and phone.text_content("#camera-text") == "Camera"


def test_plain_http_on_the_network_says_the_camera_needs_https(phone, site):
    open_page(phone, site.replace("127.0.0.1", "phone.test"))
    assert phone.evaluate("window.isSecureContext") is False
    assert phone.is_visible("#note") and "https" in phone.text_content("#note")  # said on the button itself
    phone.click("#camera")  # and why, when pressed
    assert "https" in phone.text_content("#error") and phone.get_attribute("#error", "role") == "alert"
    assert draw(phone, STROKES[7])["digit"] == 7  # the model still runs in the browser
    assert phone.evaluate("window.digitcnn.path") == "browser"


def _rgba(image: Image.Image) -> dict:
    """The image's bytes for the page's `RGBA` below: gray, RGB or RGBA as they are (a third of the
    bytes of RGBA through the browser's pipe, for a gray page of 1200x1200), anything else as RGBA."""
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGBA")
    return {"width": image.width, "height": image.height, "channels": len(image.mode),
            "b64": base64.b64encode(image.tobytes()).decode()}


# In the page: `_rgba(image)` as ImageData-like RGBA, the pixels PIL's convert("RGBA") gives (alpha 255
# where there is none). A loop, not Uint8ClampedArray.from with a function: that took seconds a photo.
RGBA = """({width, height, channels, b64}) => {
    const bytes = atob(b64);
    const data = new Uint8ClampedArray(4 * width * height);
    for (let i = 0, j = 0; i < width * height; i++, j += channels) {
        const gray = bytes.charCodeAt(j);
        data[4 * i] = gray;
        data[4 * i + 1] = channels === 1 ? gray : bytes.charCodeAt(j + 1);
        data[4 * i + 2] = channels === 1 ? gray : bytes.charCodeAt(j + 2);
        data[4 * i + 3] = channels === 4 ? bytes.charCodeAt(j + 3) : 255;
    }
    return {width, height, data};
}"""


def _transparent(canvas: np.ndarray, white: bool) -> Image.Image:
    """Strokes on nothing, as a drawing app exports them: the ink is the alpha channel."""
    rgba = np.zeros(canvas.shape + (4,), np.uint8)
    rgba[..., :3], rgba[..., 3] = 255 * white, canvas
    return Image.fromarray(rgba, "RGBA")


def _cut_out(image: Image.Image) -> Image.Image:
    """A photo with a transparent band and a half-transparent edge (mostly opaque)."""
    rgba = np.array(image.convert("RGBA"))
    rgba[: rgba.shape[0] // 5, :, 3], rgba[:, -10:, 3] = 0, 128
    return Image.fromarray(rgba, "RGBA")


def _cases(x: np.ndarray, usps: np.ndarray, x_all: np.ndarray) -> list[tuple[str, Image.Image]]:
    """MNIST digits as drawings of both polarities and many sizes, photos, whole pages, shadowed photos
    (of `x_all`, every test digit, by the seeds test_preprocess picked), tight crops of USPS digits (ink
    touching the border) and images with no digit."""
    rng = np.random.default_rng(0)
    cases = []
    for i, digit in enumerate(x):
        cases += [
            ("mnist", Image.fromarray(digit)),
            ("mnist black on white", Image.fromarray(255 - digit)),
            ("drawing", Image.fromarray(drawing(digit, 150 + 40 * i, 1 + 2 * (i % 4)))),
            ("drawing black on white", Image.fromarray(255 - drawing(digit, 500 - 30 * i, 5))),
            ("small drawing", Image.fromarray(drawing(digit, 40 + i))),
            ("transparent drawing", _transparent(drawing(digit, 120 + 40 * i, 3), white=i % 2 == 0)),
            ("photo", render_photo(digit, rng, side=200 + 30 * i, thickness=0.3 * (i % 3), rotate=4.0 * (i % 5 - 2))),
        ]
    cases += [("big photo", render_photo(x[0], rng, side=1200, rotate=3.0)),
              ("cut-out photo", _cut_out(render_photo(x[1], rng, side=300)))]
    cases += [(f"whole page {side}", render_page(x[i], [x[i + 1], x[i + 2], x[i + 3]], rng, side=side))
              for i, side in enumerate((600, 900, 1200))] + [("faint thin line, second look", faint_pen_page())]
    cases += [("page, shadow touching the digit", render_page(x[0], [], np.random.default_rng(13), jpeg=False)),
              ("bold marker", marker_photo(x[2], rng)[0])]
    cases += [(f"shadow over most of the page {i}", Image.open(io.BytesIO(render(x[i], "edge", i)[1])))
              for i in SHADOWED_OVER_HALF[:2]]
    cases += [(f"shadow's edge, {kind} {i}", Image.open(io.BytesIO(render(x_all[i], kind, i)[1]))) for kind, i in SHADOW_EDGES]
    for i, digit in enumerate(usps):
        big = np.asarray(Image.fromarray(digit).resize((64, 64), Image.BICUBIC))
        cases += [(f"tight crop, margin {margin}", Image.fromarray(np.pad(digit, margin))) for margin in (0, 2, 8)]
        cases += [("tight crop 64x64, dark on light", Image.fromarray(255 - big))]
    cases += [("tight crop in pieces", Image.fromarray(scan_in_pieces(digit))) for digit in x]
    blank = Image.new("L", (210, 210), 0)
    noise = Image.fromarray(rng.integers(90, 150, (160, 200), dtype=np.uint8))
    shapes = [(family, Image.open(io.BytesIO(photograph(shape(family, rng), rng)))) for family in ("dot", "dash")]
    return cases + shapes + [("blank", blank), ("noise", noise)]


def test_js_preprocessing_matches_python(phone, site, mnist, mnist_npz, datasets_dir):
    """web/preprocess/ and edge/preprocess/ give the same 28x28, to the gray level, or both no digit."""
    open_page(phone, site + "/?server")
    worst, compared = 0, 0
    with np.load(mnist_npz) as d:
        x_all = d["x_test"]
    for name, image in _cases(mnist[0], np.load(datasets_dir / "usps" / "usps.npz")["x"][:8], x_all):
        js = phone.evaluate("""async (image) => {
            const {toMnist} = await import('/preprocess.js');
            const out = toMnist((""" + RGBA + """)(image));
            return out && Array.from(out);
        }""", _rgba(image))
        try:
            python = to_mnist(image)
        except NoDigit:
            python = None
        assert (js is None) == (python is None), f"{name}: JS {'no digit' if js is None else 'a digit'}, Python not"
        if python is not None:
            diff = int(np.abs(np.array(js).reshape(28, 28) - python.astype(int)).max())
            assert diff == 0, f"{name} {image.size}: max difference {diff} gray levels"
            worst, compared = max(worst, diff), compared + 1
    print(f"JS vs Python preprocessing: {compared} images, max difference {worst} gray levels")
    assert compared >= 120


def test_js_median_filter_matches_python(phone, site):
    """web/preprocess/filters.js's running median gives Python's medians (themselves each sorted window's
    middle, test_preprocess), to the bit: ties, fractions, negatives, windows past the edges, both paddings."""
    open_page(phone, site + "/?server")
    cases = median_cases()
    js = phone.evaluate("""async (cases) => {
        const {medianFilter, plane} = await import('/preprocess/filters.js');
        return cases.map(([h, w, values, k, mode]) => Array.from(medianFilter(plane(h, w, Float32Array.from(values)), k, mode).a));
    }""", [[*a.shape, a.ravel().tolist(), k, mode] for a, k, mode in cases])
    for (a, k, mode), out in zip(cases, js, strict=True):
        assert np.array_equal(np.array(out, np.float32).reshape(a.shape), median_filter(a, k, mode)), (a.shape, k, mode)


def _side_by_side(*digits: np.ndarray, gap: int = 8) -> np.ndarray:
    """MNIST digits written in a row, `gap` px apart (negative: touching), white on black."""
    row = digits[0]
    for d in digits[1:]:
        if gap >= 0:
            row = np.hstack([row, np.zeros((28, gap), np.uint8), d])
        else:
            row = np.hstack([row[:, :gap], np.maximum(row[:, gap:], d[:, :-gap]), d[:, -gap:]])
    return row


def _shifted(strokes, dx: float, scale: float = 0.5):
    """Strokes drawn smaller, at `dx` across the pad: one digit of a number."""
    return [[(dx + x * scale, 0.25 + y * scale) for x, y in stroke] for stroke in strokes]


def _well_read(model: str, x: np.ndarray, y: np.ndarray) -> list[int]:
    """Indices of digits the model reads right and surely alone: a test is then about splitting, not the model."""
    return [i for i, r in enumerate(DigitModel(model).read(x)) if r.digit == y[i] and r.confidence > 0.9]


def test_js_number_splitting_matches_python(phone, site, mnist):
    """web/multi.js and edge/multi.py find the same digits, boxes, lines and 28x28 pixels."""
    from edge.multi import find_digits
    from strokes import ORDINARY, render

    x, _ = mnist
    rng = np.random.default_rng(3)  # a number's photo about 0.4 of the frame tall: it fits across
    two_lines = np.vstack([_side_by_side(x[0], x[1], x[2]), np.zeros((10, 100), np.uint8),
                           np.pad(_side_by_side(x[3], x[4]), ((0, 0), (0, 36)))])
    cases = [("photo of a number", render_photo(_side_by_side(x[0], x[1]), rng, side=320, jpeg=False)),
             ("two lines", Image.fromarray(255 - two_lines).resize((368, 264), Image.BICUBIC)),
             ("touching digits", Image.fromarray(255 - _side_by_side(x[5], x[6], gap=-3)).resize((212, 112), Image.BICUBIC)),
             ("drawn number", render(_shifted(ORDINARY[1], 0.0) + _shifted(ORDINARY[7], 0.5))),
             ("blank", Image.new("L", (200, 120), 255))]
    open_page(phone, site + "/?server")
    for name, image in cases:
        js = phone.evaluate("""async (image) => {
            const {findDigits} = await import('/multi.js');
            return findDigits((""" + RGBA + """)(image)).map((d) => ({...d, pixels: Array.from(d.pixels)}));
        }""", _rgba(image))
        python = find_digits(image)
        assert [(d["box"], d["line"]) for d in js] == [(list(d.box), d.line) for d in python], name
        for a, b in zip(js, python):
            assert np.array_equal(np.array(a["pixels"]).reshape(28, 28), b.pixels), name
        print(f"{name}: {len(js)} digits alike")
    assert [len(find_digits(image)) for _, image in cases] == [2, 5, 2, 2, 0]


def test_a_number_is_read_from_a_photo_and_from_the_pad(phone, site, int8_model, mnist, tmp_path):
    """A photo of a two-digit number reads both digits, as `predict --multi` does; so does a number drawn."""
    x, y = mnist
    first, second = _well_read(int8_model, x, y)[:2]  # the seed-2 photo is 0.42 of the frame tall: it fits across
    photo = tmp_path / "number.jpg"
    render_photo(_side_by_side(x[first], x[second]), np.random.default_rng(2), side=320).save(photo, quality=90)
    expected = json.loads(run_cli("predict", str(int8_model), str(photo), "--multi", "--json").stdout)
    assert expected["number"] == f"{y[first]}{y[second]}", expected
    open_page(phone, site)
    phone.set_input_files("#photo", str(photo))
    wait_until(phone, "window.digitcnn.latencies.length === 1")
    answer = phone.evaluate("window.digitcnn.answer")
    assert answer["number"] == expected["number"] and phone.text_content("#digit") == expected["number"]
    assert [d["box"] for d in answer["digits"]] == [d["box"] for d in expected["digits"]]
    assert "2 digits" in phone.text_content("#confidence") and len(phone.evaluate("window.digitcnn.digits")) == 2
    phone.click("#clear")
    from strokes import ORDINARY
    drawn = draw(phone, _shifted(ORDINARY[1], 0.0) + _shifted(ORDINARY[7], 0.5))
    assert drawn.get("number") == "17", drawn
