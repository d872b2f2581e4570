"""Launchers made ready ahead of time (bwrap backend): used, replaced, never left behind."""

from __future__ import annotations

import gc
import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy, cgroups
from pytest_cleanroom.backends import _nsinit_native
from pytest_cleanroom.backends.bwrap import BwrapBackend
from pytest_cleanroom.backends.namespace.prepared import Prepared
from pytest_cleanroom.backends.namespace.process_tree import Started
from pytest_cleanroom.scratch import private_mount_dir
from pytest_cleanroom.testing.leftovers import busy_cgroups_of_process, cgroups_of_process
from tests.conftest import require
from tests.integration.engine.conftest import alive, assert_dies_with_the_engine, require_backend
from tests.security.backends import wait_for_a_sandbox_entered_ahead

pytestmark = pytest.mark.integration


def _ready_pid(room: Cleanroom, limit: float = 30.0) -> int:
    """PID of the launcher the cleanroom's backend keeps ready (waiting until there is one)."""
    preparer = room._backend._preparer  # type: ignore[attr-defined]
    end = time.monotonic() + limit
    while True:
        with preparer._cond:
            if preparer._ready:
                return int(preparer._ready[0].started.proc.pid)
        assert time.monotonic() < end, "no launcher was made ready"
        time.sleep(0.01)


@pytest.fixture
def room(tmp_path: Path) -> Cleanroom:
    require_backend("bwrap")
    require(cgroups.parents() is not None, "writable cgroup v1 hierarchies (run as root)")
    return Cleanroom(tmp_path / "ws", policy="locked", backend="bwrap")


def test_a_launcher_waits_in_its_cgroups_and_close_removes_it(room: Cleanroom) -> None:
    first = _ready_pid(room)

    def joined() -> bool:  # the launcher moves itself into its cgroups as it starts
        mine = cgroups_of_process(os.getpid())
        procs = [d / cgroups.LEAF / "cgroup.procs" for d in mine]
        return any(str(first) in p.read_text().split() for p in procs if p.exists())

    end = time.monotonic() + 30
    while not joined():
        assert time.monotonic() < end, "the waiting launcher never joined its cgroups"
        time.sleep(0.01)
    room.run(["true"]).assert_success()
    second = _ready_pid(room)
    assert second != first  # the first one became the command; a new one is waiting
    room.close()
    assert not alive(second)
    assert busy_cgroups_of_process(os.getpid()) == []


def test_a_launcher_killed_meanwhile_is_replaced_by_the_plain_path(room: Cleanroom) -> None:
    pid = _ready_pid(room)
    os.kill(pid, signal.SIGKILL)
    while alive(pid):
        time.sleep(0.01)
    result = room.run(["sh", "-c", "echo still works"])
    result.assert_success().assert_stdout_contains("still works")
    room.close()


def test_a_dropped_backend_discards_its_launcher(tmp_path: Path) -> None:
    require_backend("bwrap")
    require(cgroups.parents() is not None, "writable cgroup v1 hierarchies (run as root)")
    dropped = Cleanroom(tmp_path / "ws", backend="bwrap")  # never closed
    pid = _ready_pid(dropped)
    del dropped
    gc.collect()
    end = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < end, "the waiting launcher outlived its cleanroom"
        time.sleep(0.01)


KEEP_WAITING = """
import sys, time
from pytest_cleanroom import Cleanroom
room = Cleanroom(sys.argv[1], backend="bwrap")
room.run(["true"])
preparer = room._backend._preparer
end = time.monotonic() + 60
while not preparer._ready:
    if time.monotonic() > end:
        sys.exit("no launcher was made ahead within 60 s")
    time.sleep(0.01)
print(preparer._ready[0].started.proc.pid, flush=True)
time.sleep(300)
"""


def test_a_waiting_launcher_exits_when_the_engine_is_killed(tmp_path: Path) -> None:
    require_backend("bwrap")
    require(cgroups.parents() is not None, "writable cgroup v1 hierarchies (run as root)")
    # Its orders' pipe closed: it reads nothing and exits.
    assert_dies_with_the_engine(KEEP_WAITING, str(tmp_path / "ws"))


def _scratch_mounts() -> list[str]:
    """Mount points of the engine's scratch tmpfs (made per command, or ahead for the next)."""
    where = private_mount_dir()
    assert where is not None
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(f"{where}/") and "/view-" not in p]


def test_what_a_command_does_not_take_is_released(tmp_path: Path) -> None:
    """A launcher made ahead comes with a scratch tmpfs for a command like the last one; a
    command without ``max_disk`` does not take it, and it is unmounted all the same."""
    require_backend("bwrap")
    require(cgroups.parents() is not None, "writable cgroup v1 hierarchies (run as root)")
    with_disk = Policy.level("standard")
    without = with_disk.replace(max_disk=None)
    before = set(_scratch_mounts())  # other backends' of this process (xdist), left alone
    backend = BwrapBackend()
    try:
        for index in range(6):
            policy = with_disk if index % 2 == 0 else without
            with Cleanroom(tmp_path / f"ws{index}", policy=policy, backend=backend) as room:
                room.run(["true"]).assert_success()
    finally:
        backend.close()
    end = time.monotonic() + 30  # released ones are unmounted in the background
    while left := set(_scratch_mounts()) - before:
        assert time.monotonic() < end, f"scratch tmpfs left mounted: {sorted(left)}"
        time.sleep(0.05)


def test_a_tests_first_command_starts_in_a_sandbox_entered_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests one after another on one backend: once a launcher entered the sandbox of their
    policy during the test before, each test's first command starts from it (given its new
    workspace as it starts), as its later commands do."""
    require_backend("bwrap")
    require(cgroups.parents() is not None, "writable cgroup v1 hierarchies (run as root)")
    require(_nsinit_native.program()[0] is not None, "the compiled set-up step (a C compiler)")
    given: list[int] = []  # how many trees each command entered ahead was given
    launch_entered = Prepared.launch_entered

    def counted(self: Prepared, rest: bytes, trees: Sequence[int] = ()) -> Started | None:
        given.append(len(trees))
        return launch_entered(self, rest, trees)

    monkeypatch.setattr(Prepared, "launch_entered", counted)  # a spy: the real launch goes on
    backend = BwrapBackend()
    try:
        for index in range(3):
            with Cleanroom(tmp_path / f"test-{index}", policy="locked", backend=backend) as room:
                if index:
                    wait_for_a_sandbox_entered_ahead(backend)
                    given.clear()
                room.run(["true"]).assert_success()
                if index:
                    assert given == [1], "the first command did not start in it"
    finally:
        backend.close()
