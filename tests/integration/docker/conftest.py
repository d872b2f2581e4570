"""Fixtures for tests against the real Docker engine the test command starts.

The engine is found through ``DOCKER_HOST`` (``eval "$(scripts/docker-engine.sh env)"``); the images
come from ``scripts/build-images.sh``. Missing either fails in CI and skips with the fix locally.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import require

POSTGRES_IMAGE = "cleanroom/postgres:15"
REDIS_IMAGE = "cleanroom/redis:7"
BASE_IMAGE = "cleanroom/bookworm:latest"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A docker SDK client on the engine named by DOCKER_HOST."""
    host = os.environ.get("DOCKER_HOST", "")
    require(
        bool(host),
        "DOCKER_HOST is not set: run scripts/docker-engine.sh start; "
        'eval "$(scripts/docker-engine.sh env)"',
    )
    import docker

    client = docker.DockerClient(base_url=host, timeout=60)
    try:
        client.ping()
    except Exception as exc:
        client.close()
        require(
            False, f"no Docker engine answers at {host} ({exc}): run scripts/docker-engine.sh start"
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def local_images(docker_client: Any) -> None:
    """The three locally built images exist."""
    import docker.errors

    for image in (BASE_IMAGE, POSTGRES_IMAGE, REDIS_IMAGE):
        try:
            docker_client.images.get(image)
        except docker.errors.ImageNotFound:
            require(False, f"image {image} is missing: run scripts/build-images.sh")


@pytest.fixture
def no_ryuk(monkeypatch: pytest.MonkeyPatch) -> None:
    """testcontainers without its reaper (it cannot be pulled), reaching ports on 127.0.0.1."""
    from testcontainers.core.config import testcontainers_config as config

    from pytest_cleanroom.containers import configure_testcontainers

    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    monkeypatch.setattr(config, "ryuk_disabled", True)
    # Registered for undo: configure_testcontainers() changes these two process-wide.
    monkeypatch.setattr(config, "tc_host_override", config.tc_host_override)
    monkeypatch.setattr(config, "connection_mode_override", config.connection_mode_override)
    configure_testcontainers()
