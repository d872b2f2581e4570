"""A command group's tasks and counters read again and again stay current: each read sees the
tasks and the usage of that moment, not a copy kept from an earlier read (a group's files are
read for every command, some through descriptors it keeps open)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from pytest_cleanroom import cgroups
from tests.conftest import require

pytestmark = pytest.mark.integration

#: Burns CPU for a moment, then exits.
BUSY = "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"


@pytest.fixture
def group() -> Iterator[cgroups.RunCgroup]:
    require(cgroups.parents() is not None, f"cgroups ({cgroups.why_unavailable()})")
    made = cgroups.RunCgroup.create(memory_limit=None, max_processes=None)
    assert made is not None
    try:
        yield made
    finally:
        made.remove()


def _in_group(group: cgroups.RunCgroup, script: str) -> subprocess.Popen[bytes]:
    """``sh -c script`` started in ``group``'s command cgroups (as a launcher joins them)."""
    joins = " && ".join(f'echo 0 >"{path}"' for path in group.procs_files)
    return subprocess.Popen(["/bin/sh", "-c", f"{joins} && {script}"])


def test_tasks_are_seen_as_they_join_and_leave(group: cgroups.RunCgroup) -> None:
    assert group.pids() == []
    sleeper = _in_group(group, "exec sleep 300")
    try:
        for _ in range(200):  # it joins once its shell has run the echo lines
            if group.pids():
                break
            subprocess.run(["sleep", "0.01"], check=True)
        assert group.pids() == [sleeper.pid]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert group.pids() == []


def test_cpu_time_and_peak_memory_follow_the_group(group: cgroups.RunCgroup) -> None:
    before = group.cpu_time()
    assert before is not None
    busy = _in_group(group, BUSY)
    assert busy.wait(timeout=60) == 0
    after = group.cpu_time()
    assert after is not None
    assert after > before
    assert (group.peak_memory() or 0) > 0
    if group.unified is None:  # cgroup v1: a reused group's counters start again from zero
        group.configure(None, None)
        again = group.cpu_time()
        assert again is not None
        assert again < after


def test_counters_are_read_afresh_once_the_group_is_made_anew(group: cgroups.RunCgroup) -> None:
    group.expose()  # the command could change its own group: the leaf is made anew
    group.release()
    assert cgroups.flush()
    taken = cgroups.RunCgroup.create(memory_limit=None, max_processes=None)
    assert taken is not None
    busy = _in_group(taken, BUSY)
    assert busy.wait(timeout=60) == 0
    assert taken.pids() == []
    used = taken.cpu_time()
    assert used is not None
    assert used > 0
    if taken is not group:
        taken.remove()


def test_tasks_in_groups_made_below_the_commands_own_are_seen(group: cgroups.RunCgroup) -> None:
    assert group.pids() == []
    top = group.dirs.get("pids", group.unified)
    assert top is not None
    below = top / cgroups.LEAF / "made-by-the-command"
    below.mkdir()
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        (below / "cgroup.procs").write_text(str(sleeper.pid))
        assert group.pids() == [sleeper.pid]  # seen although the group was read before
    finally:
        sleeper.kill()
        sleeper.wait()
    below.rmdir()
    assert group.pids() == []
