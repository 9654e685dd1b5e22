"""The README stays true: its commands answer --help and its tree exists."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from cashscore.core import config

ROOT = config.PROJECT_ROOT
README = (ROOT / "README.md").read_text(encoding="utf-8")


def documented_commands() -> list[str]:
    return sorted(set(re.findall(r"^\| `cashscore (\w+)", README, re.M)))


def tree_paths() -> list[str]:
    block = README.split("<!-- tree:", 1)[1].split("```", 2)[1]
    paths, parent = [], ""
    for line in block.strip("\n").splitlines():
        name = line.split()[0]
        if line.startswith(" "):
            paths.append(parent + name)
        else:
            parent = name if name.endswith("/") else ""
            paths.append(name)
    return paths


def test_readme_documents_every_subcommand():
    from cashscore.cli import build_parser

    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert documented_commands() == sorted(subcommands)


@pytest.mark.parametrize("command", documented_commands())
def test_documented_command_answers_help(command):
    done = subprocess.run(
        [sys.executable, "-m", "cashscore.cli", command, "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert f"usage: cashscore {command}" in done.stdout


@pytest.mark.parametrize("path", tree_paths())
def test_tree_path_exists(path):
    assert (ROOT / path).exists(), f"README's tree shows {path}, which does not exist"


def test_readme_shows_the_two_commands():
    assert "make run" in README and "make test" in README


def test_readme_lists_every_setting_with_its_default_and_meaning():
    from cashscore.core import config

    table = README.split("<!-- settings:", 1)[1].split("-->\n", 1)[1].split("\n\n", 1)[0]
    rows = {line.split("|")[1].strip(" `"): line.split("|")[2:4] for line in table.splitlines()[2:]}
    assert list(rows) == [v for v, _, _ in config.variables()]
    for variable, default, meaning in config.variables():
        shown, text = (cell.strip() for cell in rows[variable])
        assert text == meaning, variable
        if default is None:
            assert shown == "unset", variable
        elif variable not in ("CASHSCORE_SQL_DIR", "CASHSCORE_DATA_DIR"):
            assert shown == f"`{default}`", variable
