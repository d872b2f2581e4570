"""expose_service: a real redis-server on a unix socket, reached from an isolated sandbox."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from tests.conftest import require_binary

pytestmark = pytest.mark.integration

PING = """
import os, socket
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["REDIS_SOCKET"])
s.sendall(b"PING\\r\\n")
print(s.recv(64).decode().strip())
"""


@pytest.fixture
def redis_socket_dir(tmp_path: Path) -> Iterator[Path]:
    binary = require_binary("redis-server", "apt-get install redis-server")
    sockets = tmp_path / "redis"
    sockets.mkdir()
    sock = sockets / "redis.sock"
    server = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(500):
            if sock.exists() or server.poll() is not None:
                break
            time.sleep(0.01)
        assert sock.exists(), "redis-server did not create its socket"
        yield sockets
    finally:
        server.kill()
        server.wait()


def test_allowed_service_is_reachable_under_isolated_network(
    tmp_path: Path, backend: str, redis_socket_dir: Path
) -> None:
    policy = Policy.level("locked")
    assert policy.network == "isolated"
    with Cleanroom(tmp_path / "ws", policy=policy, backend=backend) as room:
        room.expose_service(
            "redis", redis_socket_dir, {"REDIS_SOCKET": str(redis_socket_dir / "redis.sock")}
        )
        result = room.run(["python3", "-c", PING])
    result.assert_success()
    assert result.stdout.strip() == "+PONG"
    assert result.environment["REDIS_SOCKET"] == str(redis_socket_dir / "redis.sock")


def test_service_not_allowed_is_neither_mounted_nor_announced(
    tmp_path: Path, backend: str, redis_socket_dir: Path
) -> None:
    policy = Policy.level("locked").replace(allowed_services=("postgres",))
    sock = str(redis_socket_dir / "redis.sock")
    with Cleanroom(tmp_path / "ws", policy=policy, backend=backend) as room:
        room.expose_service("redis", redis_socket_dir, {"REDIS_SOCKET": sock})
        announced = room.run(["sh", "-c", "echo ${REDIS_SOCKET:-unset}"])
        direct = room.run(["python3", "-c", PING], env={"REDIS_SOCKET": sock})
    assert announced.stdout.strip() == "unset"
    assert direct.exit_code != 0
    assert "FileNotFoundError" in direct.stderr


def test_per_run_policy_decides_whether_the_service_is_exposed(
    tmp_path: Path, backend: str, redis_socket_dir: Path
) -> None:
    sock = str(redis_socket_dir / "redis.sock")
    with Cleanroom(tmp_path / "ws", policy="locked", backend=backend) as room:
        room.expose_service("redis", redis_socket_dir, {"REDIS_SOCKET": sock})
        room.run(["python3", "-c", PING]).assert_success()
        denied = room.run(
            ["python3", "-c", PING],
            policy=Policy.level("locked").replace(allowed_services=()),
            env={"REDIS_SOCKET": sock},
        )
    assert denied.exit_code != 0


def test_missing_socket_dir_is_an_error(tmp_path: Path, backend: str) -> None:
    from pytest_cleanroom.errors import CleanroomError

    with (
        Cleanroom(tmp_path / "ws", backend=backend) as room,
        pytest.raises(CleanroomError, match="does not exist"),
    ):
        room.expose_service("redis", tmp_path / "nope", {})
