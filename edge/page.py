"""Where the phone page's files are: inside the installed package, else in the checkout.

A wheel carries `web/` and the LiteRT.js files below as `edge/web/` and `edge/node_modules/` (setup.py
copies them in), so `serve` needs no checkout and no Node.js. An editable install or a bare checkout
serves `web/` and `npm ci`'s `node_modules/` from the repository itself.

Stdlib only: setup.py reads RUNTIME from this file at build time, before anything is installed.
"""

from __future__ import annotations

from pathlib import Path

RUNTIME = (
    "@litertjs/core/dist/index.js",
    "@litertjs/wasm-utils/dist/index.js",
    "@litertjs/core/wasm/litert_wasm_compat_internal.js",
    "@litertjs/core/wasm/litert_wasm_compat_internal.wasm",
)
"""The only node_modules files served, all fetched by every page load. Only the compat build (no relaxed
SIMD) is served, and web/model.js asks for it by name: Safari, so every iPhone browser, lacks relaxed SIMD
and needs it anyway, it runs in every browser, and the two builds (about 2.8 MB each compressed) do not
both fit a small wheel; the page's model takes well under a millisecond on either."""

PACKAGE = Path(__file__).resolve().parent
CHECKOUT = PACKAGE.parent


def page_root() -> Path:
    """The folder holding `web/` and `node_modules/`: the installed package if it carries the page,
    else the checkout."""
    return PACKAGE if (PACKAGE / "web" / "index.html").is_file() else CHECKOUT
