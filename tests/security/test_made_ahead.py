"""What the engine makes ahead for the next command is out of the current command's reach.

While a command runs, the namespace backends make ready what the next one will most likely
need: its launcher (already in its cgroups), its scratch tmpfs (``/tmp`` and ``/dev/shm``) and
the view of its workspace. A command must not be able to plant anything there, nor be handed
what was made for another workspace. Each attack is a first command; the next one looks for
what it left (sentinel exit codes).
"""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from tests.security.backends import SECURITY_BACKENDS

pytestmark = pytest.mark.integration

LOCAL = [name for name in SECURITY_BACKENDS if name != "docker"]

# Writes a file into every directory it can reach below the host's scratch directories (found
# by name in /tmp and by the mount table), and prints how many it planted.
PLANT = textwrap.dedent(
    r"""
    import glob, os
    places = set(glob.glob("/tmp/cleanroom-scratch-*"))
    for line in open("/proc/self/mountinfo"):
        point = line.split()[4]
        if "cleanroom-scratch-" in point:
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
)

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
        # The host's /tmp, holding the directory of the scratch tmpfs, in plain sight.
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
            assert plant.exit_code == 0, plant.stderr
            # The attack reached the scratch directory (root's engine keeps it under the
            # host's /tmp; another user's sandbox makes its /tmp inside, out of reach).
            if not policy.private_tmp and os.geteuid() == 0:
                assert plant.stdout != "planted 0\n"
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
