"""The handwriting styles drawn onto MNIST's 7s and 9s for training (digitcnn/styles.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitcnn.styles import (CANDIDATES, INK, STYLES, crossed_seven, curled_nine, flagged_one, footed_one, mirrored_nine,
                             restyle)
from edge.preprocess import frame_digit, is_mnist_framed


@pytest.fixture(scope="module")
def train_digits(mnist_npz) -> tuple[np.ndarray, np.ndarray]:
    with np.load(mnist_npz) as d:
        return d["x_train"][:3000], d["y_train"][:3000]


def _styled(style, x: np.ndarray, y: np.ndarray, digit: int) -> list[np.ndarray]:
    """The first 40 of `digit` that take the style, styled."""
    rng = np.random.default_rng(0)
    return [out for out in (style(a, rng) for a in x[y == digit][:40]) if out is not None]


def _drawn(lines: list[list[tuple[int, int]]]) -> np.ndarray:
    """A plain digit drawn with a 2 px pen, MNIST-framed: the styles' strokes then show alone."""
    canvas = Image.new("L", (28, 28), 0)
    for line in lines:
        ImageDraw.Draw(canvas).line(line, fill=255, width=2)
    return frame_digit(np.asarray(canvas, np.float32) / 255)


def _ink_beside(a: np.ndarray, rows: slice, cols: slice) -> int:
    return int(np.count_nonzero(a[rows, cols] > INK))


def test_every_style_keeps_mnist_framing(train_digits):
    x, y = train_digits
    for digit, styles in [*STYLES.items(), *CANDIDATES.items()]:
        for style in styles:
            styled = _styled(style, x, y, digit)
            assert len(styled) >= 25, style.__name__  # most digits take their style
            for out in styled:
                assert out.dtype == np.uint8 and is_mnist_framed(out)


def test_each_style_draws_its_stroke_where_the_style_has_it():
    """On plain drawn digits: the 7's bar crosses its stem below the middle, the 9's tail runs left
    under its head or its stem is on the left; the digits had no ink there."""
    rng = np.random.default_rng(0)
    seven, nine = (_drawn([[(8, 5), (20, 5), (13, 24)]]),
                   _drawn([[(18, 10), (17, 6), (13, 5), (10, 8), (11, 12), (15, 13), (18, 10), (18, 24)]]))
    places = [(crossed_seven, seven, slice(13, 20), slice(0, 13)),  # left of the stem, a little below the middle
              (curled_nine, nine, slice(19, 28), slice(0, 13)),  # under the head's left half
              (mirrored_nine, nine, slice(18, 28), slice(0, 13))]  # a stem on the left
    for style, digit, rows, cols in places:
        assert not digit[rows, cols].any(), style.__name__
        for _ in range(5):
            out = style(digit, rng)
            assert out is not None and _ink_beside(out, rows, cols) >= 2, style.__name__


def test_restyle_changes_a_share_of_the_styled_digits_only_and_repeats(train_digits):
    x, y = train_digits
    out = restyle(x, y, 0.3, seed=1)
    assert np.array_equal(out, restyle(x, y, 0.3, seed=1))  # a resumed run trains on the same digits
    assert not np.array_equal(out, restyle(x, y, 0.3, seed=2))
    changed = (out != x).any(axis=(1, 2))
    assert not changed[~np.isin(y, list(STYLES))].any()
    for digit in STYLES:
        share = changed[y == digit].mean()
        assert 0.2 <= share <= 0.3, (digit, share)
    assert np.array_equal(restyle(x, y, 0.0, seed=1), x)


def _height(a: np.ndarray) -> int:
    rows = np.nonzero(a.any(axis=1))[0]
    return int(rows[-1] - rows[0] + 1)


def _holds(out: np.ndarray, digit: np.ndarray) -> bool:
    """Does `out` hold every pixel of `digit` unchanged or brighter, at some whole-pixel shift?"""
    return any((np.roll(digit, (dy, dx), axis=(0, 1)) <= out).all() for dy in range(-6, 7) for dx in range(-6, 7))


def test_styles_leave_the_mnist_pixels_unresampled(train_digits):
    """Resampling would soften MNIST's own pixels, and a network taught on it reads blurred digits as
    the styled ones: a style only moves the digit and adds ink (a curled 9's tail replaces the last
    fifth of its stem, which is left out of the comparison)."""
    x, y = train_digits
    for style, digit in ((crossed_seven, 7), (curled_nine, 9), (mirrored_nine, 9), (footed_one, 1), (flagged_one, 1)):
        rng = np.random.default_rng(0)
        kept = 0
        for a in x[y == digit][:40]:
            out = style(a, rng)
            if out is None:
                continue
            if _height(out) == _height(a):  # not scaled
                kept += 1
                source = a[:, ::-1] if style is mirrored_nine else a.copy()
                if style is curled_nine:
                    rows = np.nonzero(a.any(axis=1))[0]
                    source[rows[-1] - int(0.2 * (rows[-1] - rows[0])):] = 0
                assert _holds(out, source), style.__name__
        assert kept >= 30, style.__name__


def test_ones_get_a_foot_and_a_flag_where_continental_writers_put_them():
    """On a plain drawn 1 (a straight stem): the foot runs left and right of the stem's last rows, the
    flag left of the stem near its top; the 1 had no ink there."""
    rng = np.random.default_rng(0)
    one = _drawn([[(14, 4), (14, 24)]])
    foot_left, foot_right = (slice(19, 26), slice(0, 13)), (slice(19, 26), slice(17, 28))
    flag = (slice(2, 12), slice(0, 13))
    for place in (foot_left, foot_right, flag):
        assert not one[place].any()
    for _ in range(5):
        footed, flagged = footed_one(one, rng), flagged_one(one, rng)
        assert _ink_beside(footed, *foot_left) >= 2 and _ink_beside(footed, *foot_right) >= 2
        assert not footed[flag].any()
        assert _ink_beside(flagged, *flag) >= 2 and _ink_beside(flagged, *foot_right) >= 2
