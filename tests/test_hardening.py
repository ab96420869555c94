"""Audit findings fixed at their cause: absurd-but-well-formed metadata, and LiteRT's INFO line on stderr.
(The per-address connection cap of `serve` is tested with the server, in tests/test_serve.py.)"""

from __future__ import annotations

import functools
import json
import os
import re

import pytest

from conftest import ROOT, run_cli
from edge import metadata as md
from edge.errors import UserError
from edge.litert import allocate
from edge.shipped import SHIPPED_MODEL


def test_absurd_but_well_formed_metadata_is_refused_in_one_line():
    meta = md.load_metadata(SHIPPED_MODEL)
    for field, value in (("pixel_scaling.scale", 1e308), ("pixel_scaling.offset", -1e300),
                         ("features.mean", [1e308] * len(meta["features"]["mean"])), ("input.scale", 1e-300),
                         ("confidence.temperature", 1e-30)):
        broken = json.loads(json.dumps(meta))
        *path, last = field.split(".")
        functools.reduce(lambda d, k: d[k], path, broken)[last] = value
        with pytest.raises(UserError, match=f"^model metadata: {re.escape(field)} must be .*(within|in \\[)") as e:
            md.validate_metadata(broken)
        assert "\n" not in str(e.value)


def test_litert_info_lines_are_left_out_and_its_warnings_kept(capfd):
    """What LiteRT writes to file descriptor 2 while allocating: its INFO lines go, all else stays."""

    class Talkative:
        def allocate_tensors(self):
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                        b"WARNING: a real warning\nINFO:     a logger's line, not LiteRT's\n")

    allocate(Talkative())
    assert capfd.readouterr().err == "WARNING: a real warning\nINFO:     a logger's line, not LiteRT's\n"


def test_a_command_says_nothing_of_litert_on_stderr():
    result = run_cli("predict", "--json", str(SHIPPED_MODEL), str(ROOT / "web" / "icons" / "icon-192.png"))
    assert result.stderr == "" and json.loads(result.stdout)["digit"] == 7  # the icon is a written 7
