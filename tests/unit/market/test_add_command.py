"""The click-free parser of ``ggen market add`` agrees with the click command it stands in for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest

from ggen_market.add_command import _FLAGS, _VALUED, AddArgs, parse_add_argv
from ggen_market.cli import market

ADD = market.commands["add"]


def click_params(argv: list[str]) -> dict[str, Any]:
    with ADD.make_context("add", list(argv)) as ctx:
        return dict(ctx.params)


def as_params(args: AddArgs) -> dict[str, Any]:
    s = args.sources
    return {
        "specs": tuple(args.specs),
        "registries": s.registries,
        "project": s.project,
        "offline": s.offline,
        "timeout": s.timeout,
        "progress": s.progress,
        "allow_fallback": s.allow_fallback,
        "require_validated": s.require_validated,
        "as_json": args.as_json,
    }


def test_the_parser_knows_exactly_the_click_command_options() -> None:
    names = {name for p in ADD.params if isinstance(p, click.Option) for name in p.opts}
    names |= {name for p in ADD.params if isinstance(p, click.Option) for name in p.secondary_opts}
    assert names - {"--help"} == set(_VALUED) | set(_FLAGS)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["io.x"],
        ["io.x@^1.2", "io.y@~0.3"],
        ["io.x", "--registry", "reg"],
        ["--registry", "a", "io.x", "--registry=b", "--registry", "c"],
        ["io.x", "--json", "--offline"],
        ["io.x", "--timeout", "2.5", "--timeout=7"],
        ["io.x", "--timeout", "1e3"],
        ["io.x", "--progress"],
        ["io.x", "--progress", "--no-progress"],
        ["io.x", "--no-progress", "--progress"],
        ["io.x", "--project", "proj"],
        ["io.x", "--allow-fallback", "--json"],
        ["--require-validated", "io.x"],
        ["io.x", "--project=proj", "--project", "."],
        ["--json", "io.x", "--json"],
        ["io.x", "--registry=", "--json"],
        ["io.x", "--registry", "with space", "--registry", "é"],
    ],
)
def test_command_lines_parse_as_click_parses_them(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj").mkdir()
    fast = parse_add_argv(argv)
    assert fast is not None, argv
    assert as_params(fast) == click_params(argv)


@pytest.mark.parametrize(
    ("argv", "click_refuses"),
    [
        (["--help"], True),
        (["io.x", "--help"], True),
        (["io.x", "--jsn"], True),
        (["io.x", "--json=yes"], True),
        (["io.x", "--timeout", "soon"], True),
        (["io.x", "--timeout"], True),
        (["io.x", "--registry"], True),
        (["io.x", "--project", "a-file"], True),
        (["io.x", "--project", ""], False),
        (["io.x", "-h"], True),
        (["--", "io.x"], False),  # click takes it; the fast path leaves it to click
        (["io.x", "--registry", "-odd"], False),
        (["io.x", "--version"], True),
    ],
)
def test_other_command_lines_are_left_to_click(
    argv: list[str], click_refuses: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    assert parse_add_argv(argv) is None
    if click_refuses:
        with pytest.raises((click.UsageError, click.exceptions.Exit)):
            click_params(argv)
    else:
        click_params(argv)  # accepted: click handles it when ggen runs
