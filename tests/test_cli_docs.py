"""README's command-line section and ``--help`` cannot drift from the commands.

Every option of every subcommand (read from the parser that prints its ``--help``) appears
in that command's option table in README's "The command line", and every option a table
names exists; ``bridge try --help`` says what it accepts and how it exits, as README does.
"""

from __future__ import annotations

import argparse
import re

import pytest

from bridge.cli import build_parser
from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
SECTION = README[README.index("## The command line\n") : README.index("## Configuration\n")]
# The sentence that introduces each option table, and the commands it documents.
TABLES = {
    "`bridge try` and `bridge demo` (": ("try", "demo"),
    "`bridge start` and `bridge dev` (": ("start", "dev"),
    "`bridge sim`:": ("sim",),
    "`bridge bench`:": ("bench",),
    "`bridge console` (": ("console",),
}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option not in ("-h", "--help")
    }


def table_after(intro: str) -> str:
    """The Markdown table after the paragraph that starts with ``intro``."""
    start = SECTION.index("\n\n" + intro)
    lines = SECTION[start:].splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[first:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return "\n".join(rows)


def test_every_command_has_an_option_table() -> None:
    documented = {name for names in TABLES.values() for name in names}
    assert documented == set(subcommands())


@pytest.mark.parametrize("intro", list(TABLES))
def test_readme_lists_every_option_and_no_other(intro: str) -> None:
    table = table_after(intro)
    named = set(re.findall(r"^\| `(--[a-z-]+)", table, flags=re.MULTILINE))
    parsers = subcommands()
    real = set().union(*(options(parsers[name]) for name in TABLES[intro]))
    assert real - named == set(), f"README omits {sorted(real - named)} ({intro})"
    assert named - real == set(), f"README names options that do not exist: {named - real}"


def test_the_summary_table_names_every_option_too() -> None:
    parsers = subcommands()
    for name in ("sim", "try"):
        row = next(line for line in SECTION.splitlines() if line.startswith(f"| `bridge {name} "))
        for option in options(parsers[name]):
            assert f"[{option}" in row or f"{option} " in row, (name, option)


@pytest.mark.parametrize("name", ["try", "demo"])
def test_help_says_what_try_accepts_and_how_it_exits(name: str) -> None:
    text = subcommands()[name].format_help()
    flat = " ".join(text.split())
    for words in (
        "8 to 192 kHz",
        "8, 16, 24 or 32-bit integer",
        "32 or 64-bit float",
        "WAVE_FORMAT_EXTENSIBLE",
        "mono or stereo",
        "exit status:",
        "130",
    ):
        assert words in flat, words
    for code in ("0", "1", "2", "130"):
        assert re.search(rf"^\s+{code}\s+\S", text, flags=re.MULTILINE), code


def test_readme_states_the_same_exit_codes_and_formats() -> None:
    for words in (
        "any whole sample rate from 8 to\n192 kHz",
        "WAVE_FORMAT_EXTENSIBLE",
        "130 on Ctrl-C",
        "`bridge start`/`dev`: 0 after a drain, 2 on a missing or bad setting",
    ):
        assert words in SECTION, words
