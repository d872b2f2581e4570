"""What the engine makes ahead for the next command is out of the current command's reach.

While a command runs, the namespace backends make ready what the next one will most likely
need: its launcher (already in its cgroups, in the warm sandbox of commands under the same
policy), its scratch tmpfs (``/tmp`` and ``/dev/shm``) and the view of its workspace. A command
must not be able to plant anything there, nor be handed what was made for another workspace
(a test's first command starts from a launcher made during the test before: it is given its
own workspace as it starts). Each attack is a first command; the next one looks for what it
left (sentinel exit codes).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.backends import _nsinit_native, _warm, get_backend
from pytest_cleanroom.backends.namespace.prepared import Prepared
from pytest_cleanroom.backends.namespace.process_tree import Started
from pytest_cleanroom.scratch import SCRATCH_ROOT
from tests.security.backends import (
    LOCAL_BACKENDS,
    require_entering_ahead,
    wait_for_a_sandbox_entered_ahead,
)

pytestmark = pytest.mark.integration

LOCAL = LOCAL_BACKENDS

# Writes a file into every directory it can reach below the engine's scratch root (found by
# name and by the mount table), and prints how many it planted.
PLANT = textwrap.dedent(
    r"""
    import glob, os
    places = set(glob.glob("ROOT/*"))
    for line in open("/proc/self/mountinfo"):
        point = line.split()[4]
        if point.startswith("ROOT/"):
            places.add(point)
    planted = 0
    for place in sorted(places):
        for guess in [place, *(f"{place}/{n}" for n in range(200))]:
            for sub in ("", "/tmp", "/shm"):
                try:
                    with open(f"{guess}{sub}/cleanroom-planted", "w") as f:
                        f.write("planted by an earlier command")
                    planted += 1
                except OSError:
                    pass
    print("planted", planted)
    """
).replace("ROOT", SCRATCH_ROOT)

FIND = textwrap.dedent(
    """
    import os, sys
    for directory in ("/tmp", "/dev/shm"):
        if os.path.exists(os.path.join(directory, "cleanroom-planted")):
            print("planted in", directory); sys.exit(41)
    print("clean")
    """
)


@pytest.fixture(params=LOCAL)
def local_backend(request: pytest.FixtureRequest) -> str:
    from tests.security.backends import require_backend

    name: str = request.param
    require_backend(name)
    return name


@pytest.mark.parametrize(
    "policy",
    [
        Policy.level("standard"),
        Policy.level("locked"),
        # The host's /tmp (where the scratch tmpfs were kept once) in plain sight.
        Policy.level("standard").replace(private_tmp=False),
        Policy.level("locked").replace(private_tmp=False),
    ],
    ids=["standard", "locked", "standard-host-tmp", "locked-host-tmp"],
)
def test_a_command_cannot_plant_files_in_the_next_ones_scratch(
    tmp_path: Path, local_backend: str, policy: Policy
) -> None:
    with Cleanroom(tmp_path / "ws", policy=policy, backend=local_backend, seed=1) as room:
        for _ in range(3):  # the next command's launcher and scratch are made meanwhile
            plant = room.run(["python3", "-c", PLANT])
            # Every sandbox covers the scratch root, even one that shows the host's /tmp.
            assert (plant.exit_code, plant.stdout) == (0, "planted 0\n"), plant.stderr
            found = room.run(["python3", "-c", FIND])
            assert (found.exit_code, found.stdout) == (0, "clean\n"), found.stderr


@pytest.mark.parametrize("level", ["standard", "locked"])
def test_each_command_sees_its_own_workspace(
    tmp_path: Path, local_backend: str, level: str
) -> None:
    """Commands of two cleanrooms, alternating on one backend, each see their own workspace,
    never a view made ahead for the other one's."""
    first, second = tmp_path / "first", tmp_path / "second"
    with (
        Cleanroom(first, policy=level, backend=local_backend, seed=1) as one,
        Cleanroom(second, policy=level, backend=local_backend, seed=1) as two,
    ):
        (first / "mine").write_text("first")
        (second / "mine").write_text("second")
        for _ in range(3):
            for room, name in ((one, "first"), (two, "second"), (two, "second")):
                seen = room.run(["cat", "/workspace/mine"])
                assert (seen.exit_code, seen.stdout) == (0, name), seen.stderr


@pytest.mark.parametrize("level", ["standard", "locked"])
def test_a_workspace_made_anew_is_seen_anew(tmp_path: Path, local_backend: str, level: str) -> None:
    """A workspace removed and made again at the same path between two commands is the new
    directory for the second one (not the one a view was made of ahead)."""
    workspace = tmp_path / "ws"
    with Cleanroom(workspace, policy=level, backend=local_backend, seed=1) as room:
        room.run(["sh", "-c", "echo old > /workspace/marker"]).assert_success()
        shutil.rmtree(workspace)
        workspace.mkdir()
        (workspace / "fresh").write_text("new")
        seen = room.run(["sh", "-c", "ls /workspace; echo written > /workspace/out"])
        assert (seen.exit_code, seen.stdout) == (0, "fresh\n"), seen.stderr
        assert (workspace / "out").read_text() == "written\n"


# Signal 0 to every PID its namespace could hold: prints those that answer besides PID 1 (the
# sandbox's init) and itself.
REACHABLE = textwrap.dedent(
    """
    import os
    found = []
    for pid in range(2, 1 << 16):
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        found.append(pid)
    print(found)
    """
)


@pytest.mark.parametrize("level", ["standard", "locked"])
def test_the_next_commands_launcher_is_out_of_reach(
    tmp_path: Path, local_backend: str, level: str
) -> None:
    """While a command runs, the launcher of the next one (waiting in that command's sandbox)
    is made: no PID the command can name is it, so it can neither signal nor trace it, and
    the next command starts as usual."""
    with Cleanroom(tmp_path / "ws", policy=level, backend=local_backend, seed=1) as room:
        for _ in range(3):
            seen = room.run(["python3", "-c", REACHABLE])
            assert (seen.exit_code, seen.stdout) == (0, "[]\n"), seen.stderr
            room.run(["sh", "-c", "kill -KILL -1; true"])
            after = room.run(["echo", "next"])
            assert (after.exit_code, after.stdout) == (0, "next\n"), after.stderr


# What a test's first command finds: the workspace's entries, then /tmp's, then who owns the
# workspace's files and who the command is; then it leaves files in both for the next test.
FIRST = """
ls -A /workspace; echo --; ls -A /tmp; echo --
stat -c %u /workspace/mine; id -u
echo made > /workspace/made; echo left > /tmp/left
"""


@pytest.mark.parametrize("level", ["standard", "locked"])
def test_a_tests_first_command_is_given_only_its_own_workspace(
    tmp_path: Path, local_backend: str, level: str
) -> None:
    """Tests one after another on one backend, as the pytest plugin runs them: each test's
    first command starts in a sandbox entered ahead while the test before ran, and sees its own
    workspace only (shown as the sandbox user's under ``locked``), nothing the test before
    left there or in ``/tmp``; what it writes lands in its own workspace on the host."""
    require_entering_ahead()
    backend = get_backend(local_backend, Policy.level(level))
    try:
        for index in range(4):
            workspace = tmp_path / f"test-{index}"
            with Cleanroom(workspace, policy=level, backend=backend, seed=1) as room:
                (workspace / "mine").write_text(str(index))
                if index:
                    wait_for_a_sandbox_entered_ahead(backend)
                seen = room.run(["sh", "-c", FIRST])
                entries = seen.stdout.split("--\n")
                assert seen.exit_code == 0, seen.stderr
                assert entries[:2] == [".home\nmine\n", ""], seen.stdout
                # Its own workspace's files are its own: under locked the sandbox user's
                # through the idmapped clone (unmapped, they would show as the overflow uid).
                assert entries[2] == "0\n0\n", seen.stdout
                room.run(["cat", "/workspace/made"]).assert_success()
            assert (workspace / "made").read_text() == "made\n"
            assert (workspace / "made").stat().st_uid == workspace.stat().st_uid
            assert sorted(os.listdir(workspace)) == [".home", "made", "mine"]
    finally:
        backend.close()


@pytest.mark.parametrize("level", ["standard", "locked"])
def test_a_workspace_that_is_gone_fails_as_a_cold_start_does(
    tmp_path: Path, local_backend: str, level: str
) -> None:
    """A test whose workspace was removed before its first command, started from a sandbox
    entered ahead: the command does not run in some other directory; the next test's first
    command works again."""
    require_entering_ahead()
    backend = get_backend(local_backend, Policy.level(level))
    try:
        with Cleanroom(tmp_path / "first", policy=level, backend=backend, seed=1) as room:
            room.run(["true"]).assert_success()
            wait_for_a_sandbox_entered_ahead(backend)
        with Cleanroom(tmp_path / "gone", policy=level, backend=backend, seed=1) as room:
            shutil.rmtree(tmp_path / "gone")
            with pytest.raises(Exception) as failed:  # noqa: PT011 - the cold start's own error
                room.run(["sh", "-c", "ls -A /workspace"]).assert_success()
            assert "gone" in str(failed.value)
        with Cleanroom(tmp_path / "after", policy=level, backend=backend, seed=1) as room:
            (tmp_path / "after" / "mine").write_text("")
            seen = room.run(["ls", "-A", "/workspace"])
            assert (seen.exit_code, seen.stdout) == (0, ".home\nmine\n"), seen.stderr
    finally:
        backend.close()


@pytest.mark.parametrize("level", ["standard", "locked"])
def test_a_command_never_runs_in_a_warm_process_confined_otherwise(
    tmp_path: Path, local_backend: str, level: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plan entering ahead names the confinement its command's process takes before the
    command comes; the command's own plan names it again, and where the two differ the
    command runs in a process confined afresh as its own plan says. The engine never makes
    them differ (a command claims a sandbox entered ahead only with the plan it was made
    for), so this test adds a tighter limit to every plan entering ahead."""
    require_entering_ahead()
    real = _warm.WarmSandboxes.prepare_entry
    tighter = _nsinit_native.encode_plan([("rlimit", ("nofile", "33", "33"))])

    def prepare_entry(*args: Any, **kwargs: Any) -> _warm.Entered | None:
        entered = real(*args, **kwargs)
        return (
            None if entered is None else dataclasses.replace(entered, plan=entered.plan + tighter)
        )

    monkeypatch.setattr(_warm.WarmSandboxes, "prepare_entry", prepare_entry)
    launched = []  # commands started in a sandbox entered ahead
    launch_entered = Prepared.launch_entered

    def counted(self: Prepared, *args: Any) -> Started | None:
        started = launch_entered(self, *args)
        launched.append(started is not None)
        return started

    monkeypatch.setattr(Prepared, "launch_entered", counted)
    policy = Policy.level(level)
    backend = get_backend(local_backend, policy)
    show = "ulimit -n; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"
    try:
        with Cleanroom(tmp_path / "ws", policy=policy, backend=backend, seed=1) as room:
            room.run(["true"]).assert_success()
            for _ in range(3):
                wait_for_a_sandbox_entered_ahead(backend)
                result = room.run(["sh", "-c", show])
                assert result.exit_code == 0, result.stderr
                assert result.stdout.splitlines() == [
                    str(policy.max_open_files),
                    "CapEff:\t0000000000000000",
                    "NoNewPrivs:\t1",
                    "Seccomp:\t2",
                ]
    finally:
        backend.close()
    assert launched == [True] * 3


@pytest.mark.parametrize("level", ["strict", "locked"])
def test_a_command_not_started_in_the_warm_sandbox_entered_for_it_gets_an_empty_tmp(
    tmp_path: Path, local_backend: str, level: str
) -> None:
    """The sandbox entered ahead for commands like the last one mounts its scratch tmpfs at
    ``/tmp`` and makes there the mount points of what it binds below ``/tmp``. A next command
    unlike the last one (here: another readable path below ``/tmp``, the same scratch size and
    owner) starts elsewhere, with a scratch tmpfs of its own: its ``/tmp`` holds nothing but
    what its own plan puts there, as in a cold start (not the other plan's mount points)."""
    require_entering_ahead()
    with tempfile.TemporaryDirectory(dir="/tmp") as host_tmp:  # below the sandbox's /tmp
        for name in ("first", "second"):
            os.makedirs(f"{host_tmp}/{name}/shown")
        backend = get_backend(local_backend, Policy.level(level))
        try:
            with Cleanroom(tmp_path / "ws", policy=level, backend=backend, seed=1) as room:
                first = {"readable_paths": [f"{host_tmp}/first/shown"]}
                room.run(["true"], policy=first).assert_success()
                wait_for_a_sandbox_entered_ahead(backend)
                second = {"readable_paths": [f"{host_tmp}/second/shown"]}
                seen = room.run(["ls", "-A", host_tmp], policy=second)
        finally:
            backend.close()
    assert (seen.exit_code, seen.stdout) == (0, "second\n"), seen.stderr
