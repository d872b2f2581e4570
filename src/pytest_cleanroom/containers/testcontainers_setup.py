"""testcontainers pointed at published ports on 127.0.0.1 of a local engine."""

from __future__ import annotations

import os

from .engine import docker_host, unix_socket_path


def configure_testcontainers() -> None:
    """Make testcontainers reach published ports on 127.0.0.1 of a local engine.

    testcontainers guesses it runs inside a container when ``/.dockerenv`` exists (true on many CI
    VMs built from images) and then connects to the bridge gateway, where ports published on
    127.0.0.1 are not listening. Unless the user chose a connection mode (``TC_HOST``,
    ``TESTCONTAINERS_HOST_OVERRIDE``, ``TESTCONTAINERS_CONNECTION_MODE``), a local engine (a unix
    socket) is reached through 127.0.0.1 and the mapped ports.
    """
    if unix_socket_path(docker_host()) is None:
        return
    if any(
        os.environ.get(v)
        for v in ("TC_HOST", "TESTCONTAINERS_HOST_OVERRIDE", "TESTCONTAINERS_CONNECTION_MODE")
    ):
        return
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    testcontainers_config.tc_host_override = "127.0.0.1"
    testcontainers_config.connection_mode_override = ConnectionMode.docker_host
