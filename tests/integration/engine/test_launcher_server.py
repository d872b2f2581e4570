"""The launcher server (compiled ``--serve`` mode): forks launchers, never outlives the engine."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.backends import _nsinit_native
from pytest_cleanroom.backends.bwrap import BwrapBackend
from pytest_cleanroom.backends.namespace import launcher_server
from pytest_cleanroom.backends.namespace.limits import Rlimits
from pytest_cleanroom.backends.namespace.process_tree import supervise
from pytest_cleanroom.testing.leftovers import MARKER_VARIABLE, processes_with_marker
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


def _zombie_children() -> set[int]:
    """Children of this process that exited and were not waited for."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == os.getpid():
            found.add(int(entry))
    return found


@pytest.mark.parametrize("name", ["bwrap", "unshare"])
def test_a_warm_commands_status_comes_from_its_init(tmp_path: Path, name: str) -> None:
    require_backend(name)
    _server()
    before = _zombie_children()  # left by earlier tests of this process, if any
    with Cleanroom(tmp_path / "ws", policy="locked", backend=name) as room:
        results = [
            room.run("echo out; echo err >&2; exit 3"),
            room.run("sleep 30 & echo left; exit 0"),  # its leftover dies with its namespace
            room.run("kill -TERM $$"),
            room.run(["sh", "-c", "cat; exit 7"], stdin=b"fed"),
        ]
        assert room._backend.warm_holders  # type: ignore[attr-defined]
    assert [r.exit_code for r in results] == [3, 0, 128 + signal.SIGTERM, 7]
    assert (results[0].stdout, results[0].stderr) == ("out\n", "err\n")
    assert results[1].stdout == "left\n"
    assert results[3].stdout == "fed"
    # close() waited for every launcher still tearing a command's namespaces down
    assert _zombie_children() - before == set()


@pytest.mark.parametrize("level", ["standard", "locked"])
@pytest.mark.parametrize("name", ["bwrap", "unshare"])
def test_nothing_of_a_warm_command_outlives_its_result(
    tmp_path: Path, name: str, level: str
) -> None:
    require_backend(name)
    _server()
    marker = uuid.uuid4().hex
    with Cleanroom(tmp_path / "ws", policy=level, backend=name) as room:
        for _ in range(5):  # the first builds the warm sandbox, the others enter it
            result = room.run(
                "setsid sh -c 'sleep 300' </dev/null >/dev/null 2>&1 & echo left",
                env={MARKER_VARIABLE: marker},
            )
            result.assert_success().assert_stdout_contains("left")
            # killed and reaped by the command's init before it reported the status
            assert processes_with_marker(marker) == []
        assert room._backend.warm_holders  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["bwrap", "unshare"])
def test_a_warm_commands_output_of_any_size_is_read_whole(tmp_path: Path, name: str) -> None:
    """Its init reports the status while it still holds the streams: what the command wrote
    is read then, however much (more than the pipes hold, on both streams, with input fed)."""
    require_backend(name)
    _server()
    with Cleanroom(tmp_path / "ws", policy="locked", backend=name) as room:
        room.run(["true"]).assert_success()  # builds the warm sandbox the others enter
        for size in (0, 1, 65536, 65537, 3_000_000):
            result = room.run(
                f"head -c {size} /dev/zero | tr '\\0' o; head -c {size} /dev/zero >&2"
            )
            assert (result.exit_code, result.stdout, len(result.stderr_bytes)) == (
                0,
                "o" * size,
                size,
            )
        fed = bytes(range(256)) * 8192  # 2 MiB, echoed back while it is fed
        echoed = room.run(["sh", "-c", "cat; echo done >&2; exit 5"], stdin=fed)
        assert (echoed.exit_code, echoed.stdout_bytes, echoed.stderr) == (5, fed, "done\n")
        assert room._backend.warm_holders  # type: ignore[attr-defined]


def test_orders_longer_than_a_request_start_the_plain_way(tmp_path: Path) -> None:
    """The server takes a launcher's orders in one message: longer ones are not sent (nothing
    starts; the engine then starts the launcher itself), and a long command line starts whole."""
    require_backend("bwrap")
    server = _server()
    assert server.launch(["echo", "x" * launcher_server.MAX_REQUEST], Rlimits()) is None
    words = ["y" * 100_000] * 4  # longer than a message the socket carries, as a cold start's argv
    with Cleanroom(tmp_path / "ws", policy="locked", backend=BwrapBackend(warm=False)) as room:
        result = room.run(["sh", "-c", 'echo "$#" "${#1}"', "sh", *words])
    assert (result.exit_code, result.stdout) == (0, "4 100000\n"), result.stderr
    assert server.alive()
