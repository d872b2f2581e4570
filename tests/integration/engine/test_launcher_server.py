"""The launcher server (compiled ``--serve`` mode): forks launchers, never outlives the engine."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.backends import _nsinit_native
from pytest_cleanroom.backends.namespace import launcher_server
from pytest_cleanroom.backends.namespace.limits import Rlimits
from pytest_cleanroom.backends.namespace.process_tree import supervise
from tests.conftest import require
from tests.integration.engine.conftest import assert_dies_with_the_engine, require_backend

pytestmark = pytest.mark.integration


def _server() -> launcher_server.Forkserver:
    require(_nsinit_native.program()[0] is not None, "the compiled set-up step (a C compiler)")
    server = launcher_server.forkserver()
    assert server is not None
    return server


def test_a_launcher_is_the_engines_child_in_a_session_of_its_own() -> None:
    server = _server()
    script = "echo $PPID $(ps -o sid= -p $$) $$; ls /proc/self/fd; cat"
    started = server.launch(["/bin/sh", "-c", script], Rlimits())
    assert started is not None
    outcome = supervise(started, stdin=b"fed\n", timeout=30, cgroup=None, cpu_limit=None)
    assert outcome.exit_code == 0, outcome.stderr
    first, *fds, fed = outcome.stdout.decode().split("\n")[:-1]
    parent, session, pid = first.split()
    assert int(parent) == os.getpid()  # waited for by the engine, as one it forked
    assert session == pid  # its own session: killed with its process group
    assert sorted(int(fd) for fd in fds) == [0, 1, 2, 3]  # 3: ls's own directory
    assert fed == "fed"


def test_a_killed_server_is_replaced(tmp_path: Path) -> None:
    require_backend("bwrap")
    server = _server()
    os.kill(server._proc.pid, signal.SIGKILL)
    server._proc.wait()
    with Cleanroom(tmp_path / "ws", policy="locked", backend="bwrap") as room:
        for _ in range(3):  # made ahead and the plain way alike
            room.run(["sh", "-c", "echo still works"]).assert_stdout_contains("still works")
    again = launcher_server.forkserver()
    assert again is not None
    assert again is not server
    assert again.alive()


KEEP_SERVING = """
import sys, time
from pytest_cleanroom.backends.namespace import launcher_server
print(launcher_server.forkserver()._proc.pid, flush=True)
time.sleep(300)
"""


def test_the_server_exits_when_the_engine_is_killed() -> None:
    _server()
    assert_dies_with_the_engine(KEEP_SERVING)
