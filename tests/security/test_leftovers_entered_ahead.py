"""What a command leaves never reaches the next one, started in a sandbox entered ahead meanwhile.

While a command runs, the next command's sandbox is entered ahead and its process forked and
confined ahead in it. Here every next command is started only once that happened (the
leftover tests of ``test_command_leftovers.py`` let it race the preparer): the first command
leaves files, SysV IPC objects, a daemon of its own session holding listening sockets and a file
lock in the workspace, and runs with an environment variable, a working directory and stdin of
its own; the next finds none of it, and has the cleanroom's environment and directory and an
empty stdin.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.backends.local import NamespaceBackend
from tests.security.backends import (
    LOCAL_BACKENDS,
    entering_ahead,
    wait_for_a_sandbox_entered_ahead,
)
from tests.security.test_command_leftovers import FIND, LEAVE

pytestmark = pytest.mark.integration

LOCAL = LOCAL_BACKENDS

# A daemon of its own session (double forked) holding a lock on a workspace file (not a host file
# it can read: concurrent tests share those), then sleeping; the command prints what it was
# given once the lock is held.
LOCK = textwrap.dedent(
    """
    import fcntl, os, sys, time
    read, write = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            held = open("/workspace/lock", "w")
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(write, b"x")
            time.sleep(600)
        os._exit(0)
    os.read(read, 1)
    print("locked", os.environ.get("LEFT_BEHIND"), os.getcwd(), sys.stdin.read())
    """
)
# What the next command finds of the above: the lock free, its environment, directory, stdin.
CHECK = textwrap.dedent(
    """
    import fcntl, os, sys
    with open("/workspace/lock") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            print("lock held"); sys.exit(46)
    print(os.environ.get("LEFT_BEHIND"), os.getcwd(), repr(sys.stdin.read()))
    """
)


def assert_nothing_left_reaches_the_next(
    room: Cleanroom, backend: NamespaceBackend, **leave: Any
) -> None:
    """A command leaves things behind (``LEAVE``, run with ``leave``), each where it may; the
    next one, started from a sandbox entered ahead meanwhile, finds none of them (``FIND``)."""
    wait_for_a_sandbox_entered_ahead(backend)
    left = room.run(["python3", "-c", LEAVE], **leave)
    assert left.exit_code == 0, left.stderr
    assert "/tmp" in left.stdout  # the attack really wrote where it may
    wait_for_a_sandbox_entered_ahead(backend)
    found = room.run(["python3", "-c", FIND, left.stdout.split()[0]])
    assert (found.exit_code, found.stdout) == (0, "clean\n"), found.stderr


@pytest.mark.parametrize("level", ["standard", "strict", "locked"])
@pytest.mark.parametrize("name", LOCAL)
def test_the_next_command_entered_ahead_finds_nothing_left(
    tmp_path: Path, name: str, level: str
) -> None:
    with (
        entering_ahead(name, level) as backend,
        Cleanroom(tmp_path / "ws", policy=level, backend=backend, seed=1, timeout=60) as room,
    ):
        (tmp_path / "ws" / "sub").mkdir()
        room.run(["true"]).assert_success()
        for _ in range(2):
            assert_nothing_left_reaches_the_next(room, backend)
            wait_for_a_sandbox_entered_ahead(backend)
            lock = room.run(
                ["python3", "-c", LOCK], env={"LEFT_BEHIND": "1"}, cwd="sub", stdin="input"
            )
            assert (lock.exit_code, lock.stdout) == (0, "locked 1 /workspace/sub input\n")
            wait_for_a_sandbox_entered_ahead(backend)
            check = room.run(["python3", "-c", CHECK])
            assert (check.exit_code, check.stdout) == (0, "None /workspace ''\n"), check.stderr
