"""The README is a front door and the docs/ pages do not drift: links resolve, code runs, figures name
the command that prints them.

Issue 24: the README stays short and starts with `make demo` and `make test`; every relative link of
the README and docs/*.md reaches a file (and a heading, for an anchor); every ```python block of a
docs page runs, or says why not right before it; every line quoting a measured figure has a command
in backticks within a few lines, so a reader can print the figure again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]
# Generated from the code (scripts/layout_doc.py, the registries): their numbers are the code's, not measurements.
GENERATED = {"layout.md", "models.md"}
# docs/extending.md's blocks are run by its own test (tests/test_extending_doc.py), with their effects checked.
RUN_ELSEWHERE = {"extending.md"}
MAX_README_LINES = 300
MAX_NOT_RUN = 3  # blocks that may say why they do not run; more means the docs stopped being tested

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)|\bsrc=\"([^\"]+)\"|\bhref=\"([^\"]+)\"")
FENCE = re.compile(r"^\s*```(\w*)\s*$")  # indented too: a block inside a list item
NOT_RUN = re.compile(r"^<!-- not run: \S.*-->$")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
URL = re.compile(r"\]\([^)]*\)|<https?://[^>]*>|https?://\S+")
# A command a reader can run: make, pytest, the CLI, a module or script of this repository, env settings first.
COMMAND = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:make \w|(?:python -m )?pytest\b|alienstay \w|python (?:-m |-c |scripts/))")
# A measured figure: a number with a unit of time, size, rate or share, a speed-up (2.3x), or a ratio such as 0.87.
FIGURE = re.compile(
    r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?:\s?(?:%|ms|s|min|GB|MB|KB|GiB|MiB|GFLOP|(?:photos|images|captions|requests)/s)|x)(?![\w/])"
    r"|(?<![\w.])0\.\d{2,}(?![\w.])"
)
WINDOW = 6  # "within a few lines"; a table counts as one block, its rows as near its caption as its first row


def blocks(lines: list[str]) -> list[tuple[str, int, int, str]]:
    """Fenced blocks as (language, first body line, end line, the comment line just before the fence)."""
    found, start, language = [], None, ""
    for number, line in enumerate(lines):
        fence = FENCE.match(line)
        if fence and start is None:
            start, language = number, fence.group(1)
        elif line.strip() == "```" and start is not None:
            before = next((lines[i] for i in range(start - 1, -1, -1) if lines[i].strip()), "")
            found.append((language, start + 1, number, before.strip()))
            start = None
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    lines = page.read_text(encoding="utf-8").splitlines()
    inside = set()
    for _, first, end, _ in blocks(lines):
        inside.update(range(first - 1, end + 1))
    return {slug(line.lstrip("#")) for n, line in enumerate(lines) if line.startswith("#") and n not in inside}


def links(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    lines = text.splitlines()
    inside = set()
    for _, first, end, _ in blocks(lines):
        inside.update(range(first, end))
    prose = "\n".join(line for n, line in enumerate(lines) if n not in inside)
    return [next(group for group in match.groups() if group) for match in LINK.finditer(prose)]


def figure_lines_without_a_command(page: Path) -> list[tuple[int, str]]:
    """(line number, line) of every figure with no command in backticks within WINDOW lines (tables: of the table)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    code = set()
    for _, first, end, _ in blocks(lines):
        code.update(range(first - 1, end + 1))
    commands = [any(COMMAND.match(span.strip()) for span in CODE_SPAN.findall(line)) for line in lines]
    # a table is one block: its rows are as close to a command as the table's nearest line
    extent = list(range(len(lines)))
    start = None
    for n, line in enumerate([*lines, ""]):
        if line.startswith("|") and start is None:
            start = n
        elif not line.startswith("|") and start is not None:
            for row in range(start, n):
                extent[row] = (start, n - 1)
            start = None
    missing = []
    for n, line in enumerate(lines):
        if n in code or line.startswith("<!--"):
            continue
        prose = CODE_SPAN.sub(" ", URL.sub(" ", line))  # options and URLs hold numbers that are not figures
        if not FIGURE.search(prose):
            continue
        first, last = extent[n] if isinstance(extent[n], tuple) else (n, n)
        window = range(max(0, first - WINDOW), min(len(lines), last + WINDOW + 1))
        if not any(commands[i] for i in window):
            missing.append((n + 1, line.strip()[:120]))
    return missing


def test_the_readme_is_a_short_front_door_that_starts_with_make_demo_and_make_test():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines: move detail to a docs/ page"
    language, first, end, _ = blocks(lines)[0]
    commands = [line.split("#")[0].strip() for line in lines[first:end] if line.strip()]
    assert language == "bash" and commands[0].startswith("make demo") and commands[1] == "make test", commands[:2]
    for page in ("guest", "dataset", "tagging", "clustering", "restyling", "gallery", "benchmarks", "hardware",
                 "reproduce", "extending", "models", "layout"):
        assert f"(docs/{page}.md)" in README.read_text(encoding="utf-8"), f"the README does not link docs/{page}.md"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_reaches_a_file_and_its_heading(page: Path):
    broken = []
    for target in links(page):
        if re.match(r"^(https?:|mailto:)", target):
            continue
        path_part, _, anchor = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.name}")
    assert not broken, f"{page.name}: {broken}"


def test_the_link_check_sees_a_broken_link_and_a_broken_anchor(tmp_path: Path):
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n[ok](#top) [gone](missing.md) ![fig](figures/none.png) [bad](#nowhere)\n"
                    "```python\n# [not a link](inside-code.md)\n```\n", encoding="utf-8")
    assert links(page) == ["#top", "missing.md", "figures/none.png", "#nowhere"]
    assert anchors(page) == {"top"}


def docs_python_blocks() -> list[tuple[str, int, str, str]]:
    found = []
    for page in sorted(DOCS.glob("*.md")):
        if page.name in RUN_ELSEWHERE:
            continue
        lines = page.read_text(encoding="utf-8").splitlines()
        for language, first, end, before in blocks(lines):
            if language == "python":
                found.append((page.name, first, textwrap.dedent("\n".join(lines[first:end])), before))
    return found


def test_few_python_blocks_are_marked_not_run_and_each_says_why():
    marked = [(name, line) for name, line, _, before in docs_python_blocks() if NOT_RUN.match(before)]
    assert len(docs_python_blocks()) > len(marked), "no docs page runs any of its python examples"
    assert len(marked) <= MAX_NOT_RUN, f"too many python blocks are not run: {marked}"


@pytest.mark.parametrize("name,line,code,before", docs_python_blocks(), ids=lambda v: str(v)[:20])
def test_every_python_block_of_the_docs_runs(name: str, line: int, code: str, before: str, tmp_path: Path):
    if NOT_RUN.match(before):
        assert "not run:" in before and len(before) > len("<!-- not run:  -->") + 10  # the reason is written
        compile(code, f"docs/{name}:{line}", "exec")  # still valid Python
        return
    script = tmp_path / "example.py"
    script.write_text(code, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"docs/{name} line {line + 1}:\n{done.stderr[-3000:]}"


@pytest.mark.parametrize("page", [p for p in PAGES if p.name not in GENERATED], ids=lambda p: p.name)
def test_every_quoted_figure_has_the_command_that_prints_it_nearby(page: Path):
    missing = [f"{page.relative_to(REPO)}:{n}: {line}" for n, line in figure_lines_without_a_command(page)]
    assert not missing, "figures with no command within a few lines:\n" + "\n".join(missing)


def test_the_figure_check_finds_a_figure_without_a_command(tmp_path: Path):
    page = tmp_path / "page.md"
    body = ["# Speed", "", "It tags 15.3 images/s.", *[""] * 10, "Precision 0.87 on 125 photos",
            "(`alienstay calibrate --labels labels.tsv`).", *[""] * 10, "| a | b |", "| --- | --- |",
            "| x | 2.3x |", *["| y | z |"] * 12, "", "`make bench` prints the table above.", "", "",
            "Set `--target 0.95` for 40 photos."]
    page.write_text("\n".join(body) + "\n", encoding="utf-8")
    found = [n for n, _ in figure_lines_without_a_command(page)]
    assert found == [3]  # the table is covered from its end; an option in backticks is not a figure
