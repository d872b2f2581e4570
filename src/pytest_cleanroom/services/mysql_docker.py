"""The docker provider's MariaDB: a container of ``cleanroom_mysql_image`` (the official mariadb
image's contract), started through testcontainers like PostgreSQL's and Redis's.

Its port is published on 127.0.0.1 only and its unix socket directory is bind-mounted from a
private host directory; the data live on a tmpfs. The container carries the run's labels and is
recorded in the leftovers registry before it is created (see :mod:`.docker_provider`).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import replace
from typing import Any

from .docker_provider import (
    _client,
    _client_kw,
    _ensure_image,
    _prepare,
    _still_starting,
    labels,
    remove_container,
    start_on_free_port,
)
from .model import LogSource
from .mysql import MysqlServer
from .mysql_process import SERVER_OPTIONS
from .registry import Handle, Owner, Started
from .settings import ServiceSettings

ADMIN = "root"
PORT = 3306
#: The process provider's options, less those the image's entrypoint sets itself.
CONTAINER_OPTIONS = tuple(
    option
    for option in SERVER_OPTIONS
    if option not in ("--no-defaults", "--bind-address=127.0.0.1")
)


def start_mysql(settings: ServiceSettings, *, run_id: str, owner: Owner) -> Started[MysqlServer]:
    """Start a MariaDB container (``cleanroom_mysql_image``) for this run."""
    from testcontainers.core.container import DockerContainer

    deadline = time.monotonic() + settings.start_timeout
    server_dir, name, registry, record_id, handle = _prepare(
        settings, service="mysql", run_id=run_id, owner=owner
    )
    password = secrets.token_urlsafe(18)
    try:
        client = _client(timeout=settings.start_timeout)
        _ensure_image(client, settings.mysql_image, "cleanroom_mysql_image")

        def make(port: int) -> Any:
            container: Any = (
                DockerContainer(settings.mysql_image, docker_client_kw=_client_kw(settings))
                .with_name(name)
                .with_kwargs(labels=labels(run_id, owner, "mysql"))
                .with_env("MARIADB_ROOT_PASSWORD", password)
                .with_volume_mapping(str(server_dir / "sock"), "/run/mysqld", "rw")
                .with_tmpfs_mount("/var/lib/mysql")
                .with_command(" ".join(("mariadbd", *CONTAINER_OPTIONS)))
            )
            container.ports[f"{PORT}/tcp"] = ("127.0.0.1", port)  # loopback only
            return container

        container, port = start_on_free_port(make, 0, "cleanroom_mysql_port", "mysql", handle)
        server = MysqlServer(
            provider="docker",
            host="127.0.0.1",
            port=port,
            user=ADMIN,
            password=password,
            unix_socket=None,
            version="?",
            log=LogSource(kind="docker", container_id=name, docker_host=handle["docker_host"]),
        )
        server = _wait(container, server, deadline, handle)
        socket_path = server_dir / "sock" / "mysqld.sock"
        if socket_path.exists():
            server = replace(server, unix_socket=str(socket_path))
        return Started(server, handle, record_id, registry)
    except BaseException:
        with contextlib.suppress(Exception):
            remove_container(handle)
        registry.remove(record_id)
        raise


def _wait(container: Any, server: MysqlServer, deadline: float, handle: Handle) -> MysqlServer:
    """The server once it answers over TCP (the entrypoint's temporary server listens on the
    socket only, so a TCP answer is the real one), with its version."""
    last = ""
    while True:
        try:
            with server.connect(connect_timeout=2) as conn, conn.cursor() as cursor:
                cursor.execute("SELECT VERSION()")
                row = cursor.fetchone()
            version = str(row[0] if row else "?").split("-")[0]
            return replace(server, version=version)
        except Exception as exc:  # PyMySQL raises several kinds while the server starts
            last = str(exc)
        _still_starting(container, "mysql", handle, deadline, last)
