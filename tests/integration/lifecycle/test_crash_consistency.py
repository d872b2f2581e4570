"""``ggen lifecycle run`` killed (SIGKILL) at every step of its transactions (state writes, cache
store, output restore) leaves the project as it was or fully updated, and the next run cleans up.

The kills are real: ``GGEN_LIFECYCLE_CRASH_AT=N`` makes the process SIGKILL itself at its N-th
crash point (see ``pytest_cleanroom/faults.py``); ``GGEN_LIFECYCLE_CRASH_TRACE=1`` lists them, so
the test reaches every one the run passes.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from ggen_lifecycle import recovery
from ggen_lifecycle.cache import Cache
from ggen_lifecycle.state import StateStore
from tests.unit.lifecycle.helpers import write_project

from .conftest import GGEN

pytestmark = pytest.mark.integration

BUILD = """
[lifecycle.build]
commands = ["mkdir -p dist/sub", "echo one > dist/a.txt", "echo two > dist/b.txt",
            "echo three > dist/sub/c.txt"]
inputs = ["src/**"]
outputs = ["dist/**"]
"""
OUTPUTS = ("dist/a.txt", "dist/b.txt", "dist/sub/c.txt")
NEW = ("one\n", "two\n", "three\n")
OLD = ("old\n", "old\n", "old\n")


def run(root: Path, crash_at: int | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if crash_at is not None:
        env.update(GGEN_LIFECYCLE_CRASH_AT=str(crash_at), GGEN_LIFECYCLE_CRASH_TRACE="1")
    return subprocess.run(
        [*GGEN, "-C", str(root), "run", "build", "-q", "-j", "1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def crash_points(project: Path, scratch: Path) -> list[str]:
    """The names of the crash points a run of ``project`` passes (run on a copy)."""
    shutil.copytree(project, scratch)
    traced = run(scratch, crash_at=10_000)
    assert traced.returncode == 0, traced.stderr
    return re.findall(r"^crash point \d+: (.+)$", traced.stderr, re.MULTILINE)


def outputs(root: Path) -> tuple[str, ...]:
    return tuple(
        (root / rel).read_text() if (root / rel).exists() else "missing" for rel in OUTPUTS
    )


def leftovers(root: Path) -> list[str]:
    """Temporary files and journals a finished run must not leave."""
    found = []
    for path in root.rglob("*"):
        name = path.name
        temporary = name.startswith((".tmp-", ".del-")) or (
            name.startswith(".") and name.endswith(".tmp")
        )
        if temporary or ".ggen-restore-" in name or path.parent.name == "journal":
            found.append(str(path.relative_to(root)))
    return found


def assert_consistent_records(root: Path) -> None:
    """state.json is whole (old or new), and every cache entry is whole or absent."""
    warnings: list[str] = []
    StateStore(root / ".ggen/state.json", warn=warnings.append).read()
    cache = Cache(root / ".ggen/cache", 10**9, warn=warnings.append)
    for entry, _, _ in cache.entries():
        assert cache.lookup(entry.name) is not None
    assert warnings == []


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = write_project(tmp_path / "project", BUILD, {"src/x.c": "int x;"})
    (root / ".ggen").mkdir()  # so that make.toml is validated once, not in every run below
    listed = subprocess.run([*GGEN, "-C", str(root), "list"], capture_output=True, check=False)
    assert listed.returncode == 0
    return root


def killed_copy(project: Path, tmp_path: Path, number: int, point: str) -> Path:
    """A copy of ``project`` whose run was SIGKILLed at crash point ``number``; its records are
    whole (old or new)."""
    copy = tmp_path / f"crash-{number}"
    shutil.copytree(project, copy)
    killed = run(copy, crash_at=number)
    assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
    assert_consistent_records(copy)
    return copy


def assert_next_run_finishes(copy: Path, point: str) -> None:
    again = run(copy)
    assert again.returncode == 0, (point, again.stderr)
    assert outputs(copy) == NEW
    assert leftovers(copy) == [], point


def test_killed_at_every_step_of_a_first_build(project: Path, tmp_path: Path) -> None:
    points = crash_points(project, tmp_path / "traced")
    assert any(p.startswith("store:") for p in points)
    assert "state: written" in points
    for number, point in enumerate(points, start=1):
        assert_next_run_finishes(killed_copy(project, tmp_path, number, point), point)


def test_killed_at_every_step_of_a_restore(project: Path, tmp_path: Path) -> None:
    assert run(project).returncode == 0  # the cache holds the build now
    for rel in OUTPUTS:
        (project / rel).write_text("old\n")  # a hit will restore NEW over these
    points = crash_points(project, tmp_path / "traced")
    assert "restore: committed" in points
    for number, point in enumerate(points, start=1):
        copy = killed_copy(project, tmp_path, number, point)
        # What the next run does first, under the run lock: finish or undo the restore.
        recovery.clean_up(copy, copy / ".ggen", lambda message: None)
        assert outputs(copy) in (OLD, NEW), point
        assert leftovers(copy) == [], point
        if number < points.index("restore: committed") + 1:
            assert outputs(copy) == OLD, point  # killed before the point of no return
        assert_next_run_finishes(copy, point)
