"""Fixtures for lifecycle integration tests: real projects run with real processes."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ggen_lifecycle.config import load_project
from ggen_lifecycle.reporter import Reporter
from ggen_lifecycle.runner import Runner, RunOptions, RunSummary
from tests.unit.lifecycle.helpers import Workspaces, write_project

pytestmark = pytest.mark.integration

GGEN = [sys.executable, "-m", "ggen_cli", "lifecycle"]


def ggen(
    root: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GGEN, "-C", str(root), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def start(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*GGEN, "-C", str(root), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(
    path: Path, proc: subprocess.Popen[str], limit: float = 60, *, whole_line: bool = False
) -> None:
    """Wait until ``path`` exists (with ``whole_line``: holds a line ending in a newline, as a
    shell's ``echo ... > path`` writes it after creating the file)."""
    deadline = time.monotonic() + limit

    def ready() -> bool:
        if not whole_line:
            return path.exists()
        try:
            return path.read_text().endswith("\n")
        except FileNotFoundError:
            return False

    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"ggen exited early ({proc.returncode}):\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"{path} never appeared")
        time.sleep(0.02)


class Ran:
    """A finished run: its summary and everything the reporter printed."""

    def __init__(self, summary: RunSummary, output: bytes) -> None:
        self.summary = summary
        self.output = output.decode()

    def result(self, task_id: str):  # type: ignore[no-untyped-def]
        return next(r for r in self.summary.results if r.id == task_id)

    @property
    def statuses(self) -> dict[str, str]:
        return {r.id: r.status for r in self.summary.results}


RunFn = Callable[..., Ran]


@pytest.fixture
def run_project(tmp_path: Path) -> RunFn:
    """Write a project into tmp_path/proj (see ``write_project``) and run phases of it
    in-process with the given RunOptions."""

    def run(
        make_toml: str,
        phases: list[str],
        files: dict[str, str] | None = None,
        *,
        workspaces: Workspaces = (),
        **options: object,
    ) -> Ran:
        root = tmp_path / "proj"
        if make_toml:
            write_project(root, make_toml, files, workspaces=workspaces)
        stream = io.BytesIO()
        runner = Runner(load_project(root), RunOptions(**options), Reporter(stream))  # type: ignore[arg-type]
        summary = runner.run(phases)
        return Ran(summary, stream.getvalue())

    return run
