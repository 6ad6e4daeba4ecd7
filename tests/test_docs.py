"""Keep the README true: every setting is in its table with its default, every command is in its
reference, and CI runs exactly the README's test command."""

from __future__ import annotations

import re
from pathlib import Path

from shim.cli import parser
from shim.settings import SETTINGS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_with_its_default() -> None:
    table = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `(SHIM_\w+)` \| (.+?) \|", README, flags=re.MULTILINE)
    }
    assert set(table) == {s.env for s in SETTINGS}
    for setting in SETTINGS:
        expected = f"`{setting.default}`" if setting.default else "(unset)"
        assert table[setting.env] == expected, setting.env


def test_every_command_is_documented() -> None:
    commands = parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for name in commands:
        assert f"`shim {name}" in README, name


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.+?)\n```", README, flags=re.DOTALL)
    test_command = blocks[1].strip()
    assert test_command == "scripts/test"
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"exec {test_command}" in ci.splitlines()
