"""The README and docs promise only what exists: make targets, commands, matrices, links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from authbench.cli import SUBCOMMANDS
from loadtests.run.matrix import MATRICES_DIR

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
TARGETS = set(re.findall(r"(?m)^([a-z][a-z-]*):", (ROOT / "Makefile").read_text()))
MATRICES = {path.stem for path in MATRICES_DIR.glob("*.toml")}


def test_the_first_screen_has_both_commands_and_how_to_read_a_verdict() -> None:
    first = "\n".join(README.read_text().splitlines()[:40])
    assert "make bench" in first and "make test" in first
    for word in ("How to read a verdict", "supported", "equivalent within", "undecided", "†", "‡"):
        assert word in first, word


def _command_table(column: int) -> set[str]:
    """The first word of each backticked entry in one column of the README's command table."""
    lines = README.read_text().split("| `authbench …` |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|") for line in lines.splitlines()[2:]]
    cells = " ".join(row[column] for row in rows if len(row) > column + 1)
    return set(re.findall(r"`([a-z][a-z-]*)[ `]", cells))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_make_target_named_exists(page: Path) -> None:
    named = set(re.findall(r"make ([a-z][a-z-]*)", page.read_text()))
    if page == README:
        named |= _command_table(2)  # the command table's make column
    assert named - TARGETS == set(), page


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_authbench_command_named_exists(page: Path) -> None:
    text = page.read_text()
    named = set(re.findall(r"(?:^|`|bin/)authbench ([a-z][a-z-]+)", text, re.MULTILINE))
    if page == README:
        named |= _command_table(1)  # the command table's authbench column
    assert named - set(SUBCOMMANDS) == set(), page


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_matrix_named_is_shipped(page: Path) -> None:
    text = page.read_text()
    named = set(re.findall(r"(?:--matrix |MATRIX=)([a-z]+)(?![\w/.-])", text))
    assert named - MATRICES == set(), page


def test_the_command_table_lists_every_shipped_matrix() -> None:
    text = README.read_text()
    listed = re.search(r"the shipped matrices: ([a-z, ]+)", text)
    assert listed and set(listed.group(1).replace(" ", "").split(",")) == MATRICES


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    for link in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
        assert (page.parent / link).exists(), (page.name, link)
