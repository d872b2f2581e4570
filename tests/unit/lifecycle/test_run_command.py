"""The click-free parser of ``ggen lifecycle run|pipeline``: what it takes, what it leaves to
click (which then parses and reports as it always did)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggen_lifecycle.run_command import RunArgs, parse_run_argv


def test_every_run_option_is_understood() -> None:
    args = parse_run_argv(
        [
            "-C",
            "proj",
            "run",
            "build",
            "--env",
            "prod",
            "-w",
            "api",
            "-j",
            "3",
            "--no-cache",
            "--keep-going",
            "--dry-run",
            "--json",
            "--wait",
            "2.5",
            "-q",
        ]
    )
    assert args == RunArgs(
        phases=["build"],
        project_dir=Path("proj"),
        environment="prod",
        workspace="api",
        jobs=3,
        no_cache=True,
        keep_going=True,
        dry_run=True,
        as_json=True,
        wait=2.5,
        quiet=True,
        argv=["run", "build"],
    )


def test_inline_values_attached_short_jobs_and_options_before_the_phase() -> None:
    args = parse_run_argv(["--project=p", "run", "--jobs=2", "--env=ci", "-j4", "test"])
    assert args is not None
    assert (args.project_dir, args.jobs, args.environment, args.phases) == (
        Path("p"),
        4,  # the last one wins, as with click
        "ci",
        ["test"],
    )


def test_pipeline_takes_several_phases() -> None:
    args = parse_run_argv(["pipeline", "lint", "test", "--quiet", "build"])
    assert args is not None
    assert args.phases == ["lint", "test", "build"]
    assert args.argv == ["pipeline", "lint", "test", "build"]


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--help"],
        ["run", "-h"],
        ["--help"],
        ["list"],
        ["show", "build"],
        ["run"],
        ["run", "a", "b"],
        ["pipeline"],
        ["run", "build", "-j", "0"],
        ["run", "build", "-j", "two"],
        ["run", "build", "--jobs"],
        ["run", "build", "--wait", "-1"],
        ["run", "build", "--wait", "nan"],
        ["run", "build", "--unknown"],
        ["run", "build", "-qj4"],
        ["run", "--", "build"],
        ["-C"],
        ["-X", "run", "build"],
        [],
    ],
)
def test_anything_else_is_left_to_click(argv: list[str]) -> None:
    assert parse_run_argv(argv) is None
