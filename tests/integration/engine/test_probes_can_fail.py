"""The escape suite's probes are not vacuous: under weak policies they do report escapes."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.testing import probes

pytestmark = pytest.mark.integration

OPEN = Policy.level("permissive")


def _probe(room: Cleanroom, body: str, *args: str) -> int:
    return room.run(["python3", "-c", body, *args]).exit_code


def test_probes_report_escapes_from_a_permissive_sandbox(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket
    import threading

    banner = f"banner-{uuid.uuid4().hex}"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(banner.encode())

    threading.Thread(target=serve, daemon=True).start()
    value = uuid.uuid4().hex
    monkeypatch.setenv("CLEANROOM_PROBE_SECRET_TOKEN", value)
    with Cleanroom(tmp_path, policy=OPEN, backend=backend) as room:
        port = str(server.getsockname()[1])
        assert _probe(room, probes.CONNECT_HOST_LOOPBACK, port, banner) == probes.ESCAPED
        assert _probe(room, probes.NO_ROUTE_OUT) == probes.ESCAPED
        token = ("CLEANROOM_PROBE_SECRET_TOKEN", value)
        assert _probe(room, probes.SECRET_ENVIRONMENT, *token) == probes.ESCAPED
    server.close()


def test_write_probe_reports_a_writable_path(tmp_path: Path, backend: str) -> None:
    target = tmp_path / "shared"
    target.mkdir()
    # As the invoking user: the hole under test is the path, not who the command is.
    policy = Policy.level("locked").replace(writable_paths=(str(target),), unprivileged_user=False)
    with Cleanroom(tmp_path / "ws", policy=policy, backend=backend) as room:
        code = _probe(room, probes.WRITE_OUTSIDE_WORKSPACE, str(target / "x"))
    assert code == probes.ESCAPED
    assert (target / "x").read_text() == "escaped"


def test_read_probe_reports_a_readable_root(tmp_path: Path, backend: str) -> None:
    secret = uuid.uuid4().hex
    planted = tmp_path / "root-like"
    planted.mkdir()
    (planted / "secret").write_text(secret)
    policy = Policy.level("locked").replace(
        readable_paths=(str(tmp_path),), unprivileged_user=False
    )
    with Cleanroom(tmp_path / "ws", policy=policy, backend=backend) as room:
        code = _probe(room, probes.READ_ROOT, str(planted / "secret"), secret)
    assert code == probes.ESCAPED
