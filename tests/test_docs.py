"""The README and the docs/ site stay true: the site builds with no broken link, every command they show
exists with the options shown, the README's two commands are CI's, and the schema table is the code's."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from cli import main
from conftest import BLOCK_TENSORFLOW, ROOT
from edge import metadata as md

PAGES = sorted((ROOT / "docs").glob("*.md"))
SHOWN = [ROOT / "README.md", *PAGES]
OPERATORS = {"&&", "||", "|", ";", "&", "(", ")"}


def code_lines(path: Path) -> list[str]:
    """The lines of a Markdown file's fenced code blocks, backslash continuations joined."""
    lines, inside = [], False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
        elif inside:
            if lines and lines[-1].endswith("\\"):
                lines[-1] = lines[-1][:-1] + line
            else:
                lines.append(line)
    return lines


def commands(line: str) -> list[list[str]]:
    """The digitcnn / `python cli.py` invocations on a shell line, as argument lists after the program.

    `digitcnn` may be a path (`~/digitcnn/bin/digitcnn`) or a systemd `ExecStart=`; environment
    assignments before it (`TF_CONFIG=... python cli.py ...`) are skipped.
    """
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split, lexer.commenters = True, "#"
    found, words = [], []
    for token in [*lexer, ";"]:
        if token not in OPERATORS:
            words.append(token)
            continue
        while words and re.fullmatch(r"\w+=.*", words[0]) and not re.fullmatch(r"\w+=/\S*/digitcnn", words[0]):
            words.pop(0)  # VAR=value before the program
        if words:
            program = words[0].split("=", 1)[-1]
            if Path(program).name == "digitcnn":
                found.append(words[1:])
            elif Path(program).name in ("python", "python3") and words[1:2] == ["cli.py"]:
                found.append(words[2:])
        words = []
    return found


def shown_commands() -> list[tuple[str, list[str]]]:
    return [(f"{path.relative_to(ROOT)}: {line.strip()}", args)
            for path in SHOWN for line in code_lines(path) for args in commands(line)]


def test_the_command_finder_reads_shell_as_written():
    assert commands('python3 -m venv .venv && . .venv/bin/activate && npm ci && python cli.py train') == [["train"]]
    assert commands("TF_CONFIG='{\"a\": 1}' python cli.py train --out runs/multi &") == [["train", "--out",
                                                                                          "runs/multi"]]
    assert commands("ExecStart=/home/pi/digitcnn/bin/digitcnn serve --host 0.0.0.0  # boot") == [
        ["serve", "--host", "0.0.0.0"]]
    assert commands("python3 -m venv ~/digitcnn && . ~/digitcnn/bin/activate") == []
    assert commands("Description=digitcnn phone page") == []
    assert commands('pip install "digitcnn-0.1.0-py3-none-any.whl[edge]"') == []


def test_the_docs_show_every_command():
    shown = {args[0] for _, args in shown_commands() if args}
    assert shown == set(main.commands), f"commands the docs never show: {set(main.commands) - shown}"


@pytest.mark.parametrize("where, args", shown_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_shown_command_exists_with_its_options(where, args):
    assert args and args[0] in main.commands, f"{where}: no such command"
    command = main.commands[args[0]]
    known = {name for p in command.params for name in (*p.opts, *p.secondary_opts)} | {"--help"}
    given = {a.split("=", 1)[0] for a in args[1:] if a.startswith("--")}
    assert given <= known, f"{where}: {args[0]} has no {', '.join(sorted(given - known))}"
    command.make_context(args[0], args[1:])  # parsed and converted (choices, ranges), not run


def test_the_readmes_two_commands_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text().splitlines()
    assert readme[2] == "```bash" and readme[5] == "```", "the README starts with its two commands"
    train, test = (line.split(" && ") for line in readme[3:5])
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert " && ".join(test) == ci[-1], "CI's last step is the README's second command"
    # The first is the second with fewer extras and a training run in place of the tests.
    extras = [set(re.search(r'"\.\[(.*)\]"', step).group(1).split(",")) for step in (train[2], test[2])]
    assert train[:2] == test[:2] and train[3] == test[3] == "npm ci" and extras[0] <= extras[1]
    assert re.sub(r"\[.*\]", "", train[2]) == re.sub(r"\[.*\]", "", test[2])
    assert commands(train[4]) == [["train"]] and test[4] == "python -m pytest -q"


def schema_rows() -> dict[str, str]:
    """export.md's schema table: field -> the value it documents (several fields may share a row)."""
    text = (ROOT / "docs" / "export.md").read_text()
    table = text.split("## The metadata schema", 1)[1]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `"):
            for field in re.findall(r"`([\w.]+)`", cells[0]):
                rows[field] = cells[2]
    return rows


def test_the_schema_table_is_the_validators():
    rows = schema_rows()
    d = "d"  # the features' width, as the table names it
    fields = [*md._FIELDS, *md._RECIPE_FIELDS, ("features.shape", None, "a list of 2 positive integers"),
              *md._feature_fields(d), *md._adaptation_fields(d), *md._CONFIDENCE_FIELDS, *md._STAGES_FIELDS,
              *md._TRAINING_FIELDS,
              ("stages.layers.i.kind", None, f"one of {', '.join(md.STAGE_KINDS)}"),
              *{f: (f, None, wants) for kind in md.STAGE_KINDS for f, _, wants in md._stage_fields("i", kind)}.values()]
    for field, _, wants in fields:
        assert rows.get(field) == wants, f"docs/export.md: {field} should read {wants!r}, not {rows.get(field)!r}"
    quantized = {f"{t}.{q}" for t in ("input", "output", "features", "stages.layers.i") for q in ("scale", "zero_point")}
    assert quantized <= set(rows)
    assert set(rows) == {f for f, _, _ in fields} | quantized | {"source.versions"}, "a field the code lacks"


def test_the_site_builds_strictly_without_tensorflow(tmp_path):
    """Broken links, missing pages or anchors fail the build; the CLI reference is generated from click,
    importing cli.py as a Pi would, with TensorFlow refused. Run from elsewhere, so that the checkout's cli.py
    is found by the site's hook (tools/docs_hooks.py), not by the working folder."""
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW, "-m", "mkdocs", "build", "--strict",
                             "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert {p.stem for p in PAGES} <= {p.stem for p in site.glob("*.html")}
    reference = (site / "cli.html").read_text()
    for name, command in main.commands.items():
        assert f'id="digitcnn-{name}"' in reference, f"the CLI reference lacks {name}"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.opts[-1] in reference, f"the CLI reference lacks {name} {param.opts[-1]}"
    readme = (ROOT / "README.md").read_text()  # GitHub shows its links into docs/; MkDocs does not check them
    for page, anchor in re.findall(r'(?:\]\(|src=")(docs/[^)#"]+)(?:#([^)"]+))?', readme):
        assert (ROOT / page).is_file(), f"README.md links to {page}, which does not exist"
        if anchor:
            assert f'id="{anchor}"' in (site / Path(page).relative_to("docs").with_suffix(".html")).read_text(), \
                f"README.md links to {page}#{anchor}, which has no such heading"
    for image in (ROOT / "docs" / "images").glob("*.png"):
        assert image.stat().st_size < 150_000, f"{image.name}: keep screenshots small"
