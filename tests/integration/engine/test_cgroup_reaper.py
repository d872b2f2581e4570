"""The reaper kills what a dead engine's groups hold, and only that engine's groups."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_cleanroom import cgroups
from pytest_cleanroom.cgroups._reaper import reap
from tests.conftest import require

pytestmark = pytest.mark.integration


def _group(parents: dict[str, Path], name: str) -> cgroups.RunCgroup:
    group = cgroups.RunCgroup({c: p / name for c, p in parents.items()})
    group.make_dirs()
    return group


def test_reap_kills_and_removes_the_owners_groups_only() -> None:
    found = cgroups.parents()
    require(found is not None, f"cgroup v1 controllers ({cgroups.why_unavailable()})")
    assert found is not None
    # The groups of dead owners below live inside a group of this (live) process: every engine
    # starting meanwhile sweeps dead owners' groups from the top level, and would race the test.
    home = _group(found, f"{cgroups._my_group_prefix()}reaper-test")
    parents = home.dirs
    # Owners that cannot be alive: pids above the kernel's maximum.
    dead = _group(parents, "4194305-1-0.test")
    other = _group(parents, "4194306-1-0.test")
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        for procs in dead.procs_files:
            Path(procs).write_text(str(sleeper.pid))
        reap("4194305-1-", parents)
        assert sleeper.wait(timeout=10) == -9
        assert not any(d.exists() for d in dead.dirs.values())
        assert all(d.exists() for d in other.dirs.values())
    finally:
        sleeper.kill()
        sleeper.wait()
        other.remove()
        dead.remove()
        home.remove()


def test_a_reaper_ends_with_its_engine_and_leaves_nothing(tmp_path: Path) -> None:
    require(cgroups.parents() is not None, f"cgroup v1 ({cgroups.why_unavailable()})")
    script = (
        "from pytest_cleanroom import Cleanroom, watchdog\n"
        f"Cleanroom({str(tmp_path)!r}).run(['true']).assert_success()\n"
        "running = watchdog.is_running('pytest_cleanroom.cgroups._reaper')\n"
        "print('reaper running' if running else 'none')\n"
    )
    engine = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    out, _ = engine.communicate(timeout=60)
    assert engine.returncode == 0
    assert out == "reaper running\n"
    # Its reaper is named by the engine's pid; other engines' reapers may be running.
    deadline = time.monotonic() + 10
    while _reapers_of(engine.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _reapers_of(engine.pid) == []


def _reapers_of(pid: int) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return [
        line
        for line in out.splitlines()
        if "pytest_cleanroom.cgroups._reaper" in line and f" {pid}-" in line
    ]
