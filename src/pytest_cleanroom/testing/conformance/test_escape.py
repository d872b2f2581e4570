"""The escape suite: every promise of ``locked``, attacked on every backend.

Each probe runs inside the sandbox and exits with a sentinel (see
:mod:`pytest_cleanroom.testing.probes`); the host side also checks that nothing happened (no
connection accepted, no file written, the victim process alive).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy, RunResult
from pytest_cleanroom.interpreter import interpreter_dirs
from pytest_cleanroom.testing import probes, require
from pytest_cleanroom.testing.listener import Listener

LOCKED = Policy.level("locked")


@pytest.fixture
def locked(tmp_path: Path, conformance_backend: str) -> Iterator[Cleanroom]:
    with Cleanroom(tmp_path / "ws", policy=LOCKED, backend=conformance_backend) as room:
        yield room


def probe(room: Cleanroom, body: str, *args: str) -> RunResult:
    return room.run(["python3", "-c", body, *args])


def assert_blocked(result: RunResult) -> None:
    __tracebackhide__ = True
    if result.exit_code == probes.ESCAPED:
        pytest.fail(f"sandbox escape: {result.stdout.strip()}\n{result.describe()}")
    assert result.exit_code == probes.BLOCKED, f"the probe broke:\n{result.describe()}"


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    # The listener works for a host client: the probe's failure below is the sandbox's doing.
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
        assert server.banner in client.recv(100).decode()
    yield server
    server.close()


def test_host_loopback_listener_is_unreachable(locked: Cleanroom, listener: Listener) -> None:
    before = listener.accepted
    assert_blocked(probe(locked, probes.CONNECT_HOST_LOOPBACK, str(listener.port), listener.banner))
    assert listener.accepted == before


def test_host_abstract_unix_socket_is_unreachable(locked: Cleanroom) -> None:
    name = f"cleanroom-probe-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX)
    server.bind("\0" + name)
    server.listen()
    try:
        assert_blocked(probe(locked, probes.CONNECT_HOST_ABSTRACT_SOCKET, name))
    finally:
        server.close()


def test_no_network_interface_or_route_but_loopback(locked: Cleanroom) -> None:
    assert_blocked(probe(locked, probes.NO_ROUTE_OUT))


def test_writing_outside_the_workspace_fails(locked: Cleanroom, tmp_path: Path) -> None:
    host_target = tmp_path / "outside.txt"
    result = probe(locked, probes.WRITE_OUTSIDE_WORKSPACE, str(host_target))
    assert_blocked(result)
    assert not host_target.exists()
    assert not Path("/etc/cleanroom-escape").exists()
    # ... while the workspace itself is writable.
    locked.run("echo ok > inside.txt").assert_success()
    assert locked.workspace.read("inside.txt") == "ok\n"


def test_remounting_or_mounting_fails(locked: Cleanroom) -> None:
    assert_blocked(probe(locked, probes.REMOUNT_AND_MOUNT))


@pytest.fixture
def root_secret() -> Iterator[tuple[Path, str]]:
    require(os.access("/root", os.W_OK), "root, to plant a secret file in /root")
    secret = uuid.uuid4().hex
    path = Path("/root") / f".cleanroom-probe-{secret[:8]}"
    path.write_text(secret)
    try:
        yield path, secret
    finally:
        path.unlink()


def test_reading_a_file_under_root_fails(locked: Cleanroom, root_secret: tuple[Path, str]) -> None:
    path, secret = root_secret
    # Only the way to the Python running the engine (pyenv's under /root/.pyenv) may be listed.
    let_through = {d.split("/")[2] for d in interpreter_dirs() if d.startswith("/root/")}
    assert_blocked(probe(locked, probes.READ_ROOT, str(path), secret, *sorted(let_through)))


def test_host_secret_variable_is_absent(locked: Cleanroom, monkeypatch: pytest.MonkeyPatch) -> None:
    value = f"s3cr3t-{uuid.uuid4().hex}"
    monkeypatch.setenv("CLEANROOM_PROBE_SECRET_TOKEN", value)
    assert_blocked(probe(locked, probes.SECRET_ENVIRONMENT, "CLEANROOM_PROBE_SECRET_TOKEN", value))


@pytest.fixture
def victim() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)", "cleanroom-victim"]
    )
    yield proc
    proc.kill()
    proc.wait()


def test_host_process_cannot_be_seen_signalled_or_traced(
    locked: Cleanroom, victim: subprocess.Popen[bytes]
) -> None:
    assert_blocked(probe(locked, probes.SIGNAL_OR_TRACE_HOST_PROCESS, str(victim.pid)))
    assert victim.poll() is None, "the host process was killed from the sandbox"


def test_kernel_knobs_and_devices_are_out_of_reach(locked: Cleanroom) -> None:
    assert_blocked(probe(locked, probes.KERNEL_KNOBS))


def test_no_capabilities_no_new_privileges_no_nested_user_namespace(locked: Cleanroom) -> None:
    assert_blocked(probe(locked, probes.PRIVILEGES))


def test_daemon_sockets_are_hidden(locked: Cleanroom) -> None:
    assert_blocked(probe(locked, probes.DAEMON_SOCKETS))
