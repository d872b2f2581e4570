"""Fixtures for lifecycle integration tests: real projects run with real processes."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest

from ggen_lifecycle.config import load_project
from ggen_lifecycle.reporter import Reporter
from ggen_lifecycle.runner import Runner, RunOptions, RunSummary
from tests.unit.lifecycle.helpers import write_project

pytestmark = pytest.mark.integration


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
    """Write a project into tmp_path/proj and run phases of it in-process."""

    def run(
        make_toml: str,
        phases: list[str],
        files: dict[str, str] | None = None,
        **options: object,
    ) -> Ran:
        root = tmp_path / "proj"
        if make_toml:
            write_project(root, make_toml, files)
        stream = io.BytesIO()
        runner = Runner(load_project(root), RunOptions(**options), Reporter(stream))  # type: ignore[arg-type]
        summary = runner.run(phases)
        return Ran(summary, stream.getvalue())

    return run
