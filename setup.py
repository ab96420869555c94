"""Build hook: a wheel carries the phone page, so an installed digitcnn serves it with no checkout and no Node.js.

Everything else is declared in pyproject.toml. `web/` and the allow-listed LiteRT.js files (edge/page.py
RUNTIME, from `npm ci`'s node_modules) are copied into the wheel as `edge/web/` and `edge/node_modules/`.
Without them the build stops with one line saying to run `npm ci`. Editable installs copy nothing: they
serve the checkout's own folders.
"""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithPage(build_py):
    def run(self) -> None:
        if self.editable_mode:
            return super().run()
        runtime = runpy.run_path(str(HERE / "edge" / "page.py"))["RUNTIME"]
        missing = [name for name in runtime if not (HERE / "node_modules" / name).is_file()]
        if missing:
            raise SystemExit(f"node_modules/{missing[0]} is missing: run `npm ci` before building the wheel "
                             "(the phone page's LiteRT.js runtime goes into it)")
        super().run()
        target = Path(self.build_lib) / "edge"
        for folder in ("web", "node_modules"):  # no file left over from an earlier build
            shutil.rmtree(target / folder, ignore_errors=True)
        shutil.copytree(HERE / "web", target / "web")
        for name in runtime:
            (target / "node_modules" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HERE / "node_modules" / name, target / "node_modules" / name)


setup(cmdclass={"build_py": BuildPyWithPage})
