"""A command that cannot start from the launcher made ahead for it is as clean as a cold start.

While a command runs, the namespace backends make the next command's launcher ahead: in its
cgroups, with its scratch tmpfs, often in the warm sandbox of its policy with its fresh mounts
made. When that launcher dies between being taken and being given its orders (the engine's
process tree is not the only one that can kill it: an OOM kill, a stray ``kill -9``), the command
falls back to a spare launcher, a cold start or the plain path. These tests kill that launcher
at that very moment, for real, and look at what the command and the commands after it get:
cgroups (their limits and counters), ``/tmp``, ``/dev/shm``, SysV IPC, environment and
directory must be their own, exactly as a cold start's.
"""

from __future__ import annotations

import os
import signal
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_cleanroom import Cleanroom, Policy, cgroups
from pytest_cleanroom.backends import get_backend
from pytest_cleanroom.backends.local import NamespaceBackend
from pytest_cleanroom.backends.namespace.prepared import Prepared
from tests.security import ns_probes
from tests.security.backends import (
    LOCAL_BACKENDS,
    entering_ahead,
    require_backend,
    require_entering_ahead,
    wait_for_a_sandbox_entered_ahead,
)
from tests.security.test_leftovers_entered_ahead import assert_nothing_left_reaches_the_next

pytestmark = pytest.mark.integration


def kill_taken_launchers(
    backend: NamespaceBackend, which: Callable[[Prepared], bool]
) -> list[Prepared]:
    """Make ``backend`` kill each launcher of ``which`` right after a command took it, before
    the command gives it its orders (the launcher dies as a race would have it die); the list
    of those killed."""
    killed: list[Prepared] = []
    take = backend._take_prepared

    def taken(limits: dict[str, Any], *, spare: bool = False) -> Prepared | None:
        prepared = take(limits, spare=spare)
        if prepared is not None and which(prepared):
            pid = prepared.started.proc.pid
            os.kill(pid, signal.SIGKILL)
            while _state(pid) != "Z" or set(prepared.group.pids()) - {pid}:
                prepared.group.kill()  # what it forked, if it did
                time.sleep(0.001)  # all gone; the launcher not reaped: the engine does it
            killed.append(prepared)
        return prepared

    backend._take_prepared = taken  # type: ignore[method-assign]
    return killed


def _state(pid: int) -> str:
    """The state letter of process ``pid`` (``R``, ``S``, ``Z``...)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0]


def wait_for_a_launcher(backend: NamespaceBackend, limit: float = 60.0) -> None:
    """Wait until ``backend`` keeps a launcher ready (made ahead of its next command)."""
    preparer = backend._preparer
    assert preparer is not None
    end = time.monotonic() + limit
    while True:
        with preparer._cond:
            if preparer._ready:
                return
        assert time.monotonic() < end, f"no launcher was made ahead within {limit} s"
        time.sleep(0.01)


# In user + mount + cgroup namespaces of its own (as standard lets it), mounts the pids
# hierarchy (cgroup2 where there is no v1 one) and sets its own group's pids.max to 3.
SET_OWN_PIDS_MAX = ns_probes._NESTED + textwrap.dedent(
    r"""
    import sys
    if not nested_namespaces():
        print("no nested namespaces"); sys.exit(3)
    os.makedirs("/tmp/pids")
    if libc.mount(b"none", b"/tmp/pids", b"cgroup", 0, b"pids") != 0:
        if libc.mount(b"none", b"/tmp/pids", b"cgroup2", 0, None) != 0:
            print("cannot mount cgroupfs"); sys.exit(4)
    try:
        with open("/tmp/pids/pids.max", "w") as f:
            f.write("3")
    except PermissionError:  # cgroup v2 mounted with nsdelegate: its own root's knobs are not its
        print("refused"); sys.exit(0)
    print("set")
    """
)


# What a command was given: a variable of an earlier command's, its directory, its stdin.
SHOW_OWN = "import os, sys; print(os.environ.get('LEFT'), os.getcwd(), repr(sys.stdin.read()))"


def leaf_pids_limits() -> dict[str, str]:
    """``{group: pids.max of its command's own group}`` for every group of this process."""
    parents = cgroups.parents()
    assert parents is not None
    top = parents.get("pids", parents.get(cgroups.UNIFIED))
    assert top is not None
    prefix = cgroups._my_group_prefix()
    found = {}
    for group in top.iterdir():
        knob = group / cgroups.LEAF / "pids.max"
        if group.name.startswith(prefix) and knob.exists():
            found[group.name] = knob.read_text().strip()
    return found


@pytest.mark.parametrize("name", LOCAL_BACKENDS)
def test_a_cgroup_changed_by_a_command_whose_warm_launcher_died_is_not_reused(
    tmp_path: Path, name: str
) -> None:
    """Under ``standard`` a command may mount cgroupfs in namespaces of its own and change
    the knobs of its own group; a group it ran in is then never given to a later command
    as it left it. That holds too for a command whose launcher made ahead died before it
    started (it then runs in a group made on the spot): no group of the engine keeps the
    ``pids.max`` the command set, and the commands after it can fork."""
    require_backend(name)
    require_entering_ahead()  # launchers made ahead, in cgroups the engine makes
    backend = get_backend(name, Policy.level("standard"))
    assert isinstance(backend, NamespaceBackend)
    try:
        with Cleanroom(tmp_path / "ws", policy="standard", backend=backend, seed=1) as room:
            wait_for_a_launcher(backend)
            killed = kill_taken_launchers(backend, lambda prepared: prepared.entered is None)
            changed = room.run(["python3", "-c", SET_OWN_PIDS_MAX])
            # Set (cgroup v1), or refused by the kernel (cgroup v2 with nsdelegate, as systemd
            # mounts it): either way no later command may get the group as it left it.
            assert changed.exit_code == 0, changed.stderr
            assert changed.stdout in ("set\n", "refused\n"), changed.stdout
            assert len(killed) == 1  # the command did start after its launcher died
            cgroups.flush()
            assert set(leaf_pids_limits().values()) <= {"max"}, leaf_pids_limits()
            for _ in range(4):
                forks = room.run(["sh", "-c", "for i in 1 2 3 4 5; do true & done; wait; echo ok"])
                assert (forks.exit_code, forks.stdout) == (0, "ok\n"), forks.stderr
    finally:
        backend.close()


@pytest.mark.parametrize("level", ["standard", "strict", "locked"])
@pytest.mark.parametrize("name", LOCAL_BACKENDS)
def test_a_command_whose_warm_launcher_died_finds_nothing_left(
    tmp_path: Path, name: str, level: str
) -> None:
    """Each command's launcher entered its warm sandbox ahead and dies as the command takes
    it: the command starts from the spare launcher (or cold), and finds nothing an earlier
    command left in ``/tmp``, ``/dev/shm``, SysV IPC or processes, and has its own
    environment, directory and stdin."""
    with (
        entering_ahead(name, level) as backend,
        Cleanroom(tmp_path / "ws", policy=level, backend=backend, seed=1) as room,
    ):
        (tmp_path / "ws" / "sub").mkdir()
        room.run(["true"]).assert_success()
        killed = kill_taken_launchers(backend, lambda prepared: prepared.entered is not None)
        assert_nothing_left_reaches_the_next(room, backend, env={"LEFT": "1"}, cwd="sub", stdin="x")
        wait_for_a_sandbox_entered_ahead(backend)
        own = room.run(["python3", "-c", SHOW_OWN])
        assert (own.exit_code, own.stdout) == (0, "None /workspace ''\n"), own.stderr
        assert killed  # at least one of them started after its launcher died
