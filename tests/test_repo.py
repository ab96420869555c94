"""Promises about the repository itself: the README's commands, CI, and a light CLI."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT, run_cli


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text().splitlines()
    fence = readme.index("```bash")
    install_and_run, install_and_test = readme[fence + 1], readme[fence + 2]
    assert "python cli.py train" in install_and_run
    assert "pytest" in install_and_test
    assert install_and_test in (ROOT / ".ci" / "run").read_text().splitlines()


def test_cli_imports_no_tensorflow_until_a_command_needs_it():
    code = "import sys, cli; sys.exit(any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0


def test_help_lists_the_commands():
    assert "train" in run_cli("--help").stdout
