"""Leftovers of dead engines neither survive nor cost (#19): the next engine's sweep removes a
dead owner's groups with everything below them, in the background, and leaves what cannot be
removed yet to a later sweep instead of waiting for it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import cgroups
from tests.conftest import require

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
# A pid above the kernel's maximum: an owner that cannot be alive.
DEAD_OWNER = "4194309-1-"

# A fresh engine process: its first use of cgroups starts the sweep; report what it left.
ENGINE = """
import sys
from pytest_cleanroom import Cleanroom, cgroups
with Cleanroom(sys.argv[1], backend="bwrap") as room:
    room.run(["true"]).assert_success()
assert cgroups.join_sweep(60), "the sweep never ended"
print("done")
"""


def _engine_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", ENGINE, str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert done.stdout == "done\n", done.stderr


@pytest.fixture
def parents() -> dict[str, Path]:
    found = cgroups.parents()
    require(found is not None, f"writable cgroups ({cgroups.why_unavailable()})")
    assert found is not None
    return found


@pytest.fixture
def orphan() -> Iterator[int]:
    """A process whose parent is gone, as a dead engine's are (init reaps it when it dies)."""
    out = subprocess.run(
        ["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True
    )
    pid = int(out.stdout)
    yield pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (waiting a while for it to be reaped)."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def _leftover(parents: dict[str, Path], name: str, pid: int) -> list[Path]:
    """A dead owner's group with groups below it, ``pid`` in the deepest, in every hierarchy."""
    made = []
    for hierarchy, parent in parents.items():
        deepest = parent / name / cgroups.LEAF / "hide" / "deeper"
        deepest.mkdir(parents=True)
        if "cpuset" in hierarchy.split(","):
            for group in (deepest.parents[2], deepest.parents[1], deepest.parent, deepest):
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (group / knob).write_text((group.parent / knob).read_text())
        (deepest / "cgroup.procs").write_text(str(pid))
        made.append(parent / name)
    return made


def test_the_sweep_kills_and_removes_leftovers_with_groups_below_them(
    tmp_path: Path, parents: dict[str, Path], orphan: int
) -> None:
    made = _leftover(parents, f"{DEAD_OWNER}0.sweep", orphan)
    _engine_start(tmp_path)
    assert _gone(orphan)
    assert [group for group in made if group.exists()] == []


def test_a_leftover_that_cannot_go_yet_is_left_to_a_later_sweep(
    tmp_path: Path, parents: dict[str, Path], orphan: int
) -> None:
    require("freezer" in parents, "the cgroup v1 freezer hierarchy")
    # The leftover's task is frozen by a group outside it: SIGKILL cannot end it until thawed.
    jail = parents["freezer"].parent / f"cleanroom-test-jail-{os.getpid()}"
    jail.mkdir()
    try:
        (jail / "cgroup.procs").write_text(str(orphan))
        (jail / "freezer.state").write_text("FROZEN")
        made = _leftover(
            {h: p for h, p in parents.items() if h != "freezer"},
            f"{DEAD_OWNER}1.sweep",
            orphan,
        )
        _engine_start(tmp_path)  # runs its command, and its sweep ends, with the leftover there
        assert all(group.exists() for group in made)
        (jail / "freezer.state").write_text("THAWED")
        assert _gone(orphan)  # killed by the sweep; dies once thawed
        _engine_start(tmp_path)
        assert [group for group in made if group.exists()] == []
    finally:
        (jail / "freezer.state").write_text("THAWED")
        with contextlib.suppress(ProcessLookupError):
            os.kill(orphan, signal.SIGKILL)
        _gone(orphan)
        jail.rmdir()
