"""A hung Docker engine at -n 2: the run asks it once (the controller chooses the providers for
every worker), so every test that needs a container fails after one start timeout, not after
one per worker and service."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("runtime_dir")]


@pytest.fixture
def hung_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[socket.socket]]:
    """A socket that accepts connections and never answers, as a hung dockerd does (stopping the
    machine's shared engine to get a real one is not ours to do); yields the connections."""
    path = Path(f"/tmp/crh-{os.getpid()}.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    monkeypatch.setenv("CLEANROOM_SERVICES", "docker")
    monkeypatch.setenv("CLEANROOM_SERVICES_START_TIMEOUT", "2")
    yield held
    server.close()
    for conn in held:
        conn.close()
    path.unlink()


TESTS = """
import pytest


@pytest.mark.parametrize("n", range(4))
def test_postgres(postgres, n):
    pass


@pytest.mark.parametrize("n", range(4))
def test_redis(redis, n):
    pass
"""


def test_a_hung_engine_is_asked_once_per_run(
    pytester: pytest.Pytester, hung_engine: list[socket.socket]
) -> None:
    pytester.makepyfile(test_services=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(errors=8)
    result.stdout.fnmatch_lines(
        [
            "cleanroom services: postgres=unavailable (CLEANROOM_SERVICES=docker but the Docker "
            "engine at unix://*did not answer within 2s*",
            "*ServiceUnavailableError: CLEANROOM_SERVICES=docker but the Docker engine*did not "
            "answer within 2s*",
        ]
    )
    assert len(hung_engine) == 1  # the controller's one question, for both services
