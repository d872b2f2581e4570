"""A SIGKILLed engine leaves no container of the docker backend running: its reaper removes
them at once (not only the next process's sweep)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_cleanroom import containers as ds
from tests.security.backends import require_backend

pytestmark = pytest.mark.integration

# The engine labels its containers as made on another host: the sweeps of other processes using
# the same Docker engine then leave them alone (they cannot tell whether such an owner lives), so
# only this engine's own reaper can remove them here.
ENGINE = """
import socket
import sys
socket.gethostname = lambda: "elsewhere.invalid"
from pytest_cleanroom import Cleanroom
with Cleanroom(sys.argv[1], policy=sys.argv[2], backend="docker") as room:
    room.run(["sleep", "300"])
"""


@pytest.fixture
def client() -> Iterator[Any]:
    require_backend("docker")
    docker_client = ds.connect()
    yield docker_client
    docker_client.close()


def containers_of(client: Any, pid: int, status: str | None = None) -> list[Any]:
    filters: dict[str, Any] = {"label": [f"{ds.LABEL_OWNER_PID}={pid}", f"{ds.LABEL_ROLE}=backend"]}
    if status is not None:
        filters["status"] = status
    # sparse: no inspection of each container, which one being removed meanwhile fails (404)
    return list(client.containers.list(all=True, filters=filters, sparse=True))


def wait_for(condition: Any, what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.mark.parametrize("level", ["standard", "locked"])
def test_sigkilled_engine_leaves_no_container(client: Any, tmp_path: Path, level: str) -> None:
    engine = subprocess.Popen([sys.executable, "-c", ENGINE, str(tmp_path / "ws"), level])
    try:
        wait_for(lambda: containers_of(client, engine.pid, "running"), "the command never ran")
        os.kill(engine.pid, signal.SIGKILL)
        engine.wait()
        # No other process of this pid uses docker: only the dead engine's reaper can act.
        wait_for(lambda: not containers_of(client, engine.pid), "the container outlived its engine")
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
        for container in containers_of(client, engine.pid):  # nobody else would remove them
            container.remove(force=True)
