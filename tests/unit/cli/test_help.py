"""``ggen GROUP --help`` lists every command with its whole one-line summary at 80 columns
(click cuts a long first docstring sentence with "..." unless the command has a short_help)."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest

from ggen_cli.__main__ import GROUPS
from ggen_lifecycle.cli import lifecycle
from ggen_market.cli import market, template
from ggen_market.test_command import test as ggen_test_group
from pytest_cleanroom.attest.cli import attest

CLICK_GROUPS = {
    "market": market,
    "template": template,
    "lifecycle": lifecycle,
    "attest": attest,
    "test": ggen_test_group,
}


def test_every_ggen_group_is_checked() -> None:
    assert set(CLICK_GROUPS) == set(GROUPS)


@pytest.mark.parametrize("name", sorted(CLICK_GROUPS))
def test_command_summaries_are_whole_at_80_columns(name: str) -> None:
    group = CLICK_GROUPS[name]
    assert isinstance(group, click.Group)
    done = subprocess.run(
        [sys.executable, "-m", "ggen_cli", name, "--help"],
        env={**os.environ, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    section = done.stdout.split("Commands:\n", 1)[1]
    assert "..." not in section
    assert "\u2026" not in section
    lines = section.rstrip("\n").splitlines()
    assert len(lines) == len(group.commands), section  # one line per command: nothing wrapped
    for command_name, command in group.commands.items():
        summary = command.get_short_help_str(limit=1000)
        assert summary, f"ggen {name} {command_name} has no summary"
        assert any(
            line.split()[:1] == [command_name] and line.rstrip().endswith(summary) for line in lines
        ), f"ggen {name} {command_name}: {summary!r} not shown whole in\n{section}"
