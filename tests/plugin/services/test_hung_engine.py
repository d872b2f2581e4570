"""A hung engine (Docker or Podman) at -n 2: the run asks it once (the controller chooses the
providers for every worker), so every test that needs a container fails after one start
timeout, not after one per worker and service."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom.services.engines import ENGINES, ContainerEngine
from tests.integration.services.conftest import engine_env, mute_socket

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("runtime_dir")]


@pytest.fixture(params=list(ENGINES))
def broken(request: pytest.FixtureRequest) -> ContainerEngine:
    return ENGINES[request.param]


@pytest.fixture
def hung_engine(
    monkeypatch: pytest.MonkeyPatch, broken: ContainerEngine
) -> Iterator[list[socket.socket]]:
    """The engine's socket never answers (see mute_socket); yields the connections."""
    path = Path(f"/tmp/crh-{os.getpid()}.sock")
    with mute_socket(path) as held:
        env = engine_env(broken)
        env = {
            name: f"unix://{path}" if name != "CLEANROOM_SERVICES" else value
            for name, value in env.items()
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("CLEANROOM_SERVICES_START_TIMEOUT", "2")
        yield held


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
    pytester: pytest.Pytester, hung_engine: list[socket.socket], broken: ContainerEngine
) -> None:
    pytester.makepyfile(test_services=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(errors=8)
    result.stdout.fnmatch_lines(
        [
            f"cleanroom services: postgres=unavailable (CLEANROOM_SERVICES={broken.name} but the "
            f"{broken.title} at unix://*did not answer within 2s*",
            f"*ServiceUnavailableError: CLEANROOM_SERVICES={broken.name} but the {broken.title}*"
            "did not answer within 2s*",
        ]
    )
    assert len(hung_engine) == 1  # the controller's one question, for both services
