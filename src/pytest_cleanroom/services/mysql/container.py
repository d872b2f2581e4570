"""MariaDB in a container (``cleanroom_mysql_image``, the official mariadb image's contract).

Its port is published on 127.0.0.1 only and its unix socket directory is bind-mounted from a
private host directory; the data live on a tmpfs. The administrator's random password is handed
to the image's entrypoint. The shared start is :class:`~.container_provider.ContainerService`'s.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

from ..container_provider import ContainerService
from .model import MysqlServer
from .process import SERVER_OPTIONS

ADMIN = "root"
PORT = 3306
#: The process provider's options, less those the image's entrypoint sets itself.
CONTAINER_OPTIONS = tuple(
    option
    for option in SERVER_OPTIONS
    if option not in ("--no-defaults", "--bind-address=127.0.0.1")
)


class MysqlContainer(ContainerService[MysqlServer]):
    """The run's MariaDB server in a container."""

    service = "mysql"
    image_key = "cleanroom_mysql_image"
    port_key = "cleanroom_mysql_port"

    def image(self) -> str:
        return self.settings.mysql_image

    def prepare(self) -> None:
        self.password = secrets.token_urlsafe(18)

    def container(self, port: int) -> Any:
        from testcontainers.core.container import DockerContainer

        container = (
            self.new_container(DockerContainer, self.settings.mysql_image)
            .with_env("MARIADB_ROOT_PASSWORD", self.password)
            .with_volume_mapping(str(self.socket_dir), "/run/mysqld", "rw")
            .with_tmpfs_mount("/var/lib/mysql")
            .with_command(" ".join(("mariadbd", *CONTAINER_OPTIONS)))
        )
        container.ports[f"{PORT}/tcp"] = ("127.0.0.1", port)  # loopback only
        return container

    def probe(self, port: int) -> MysqlServer:
        """The server once it answers over TCP (the entrypoint's temporary server listens on
        the socket only, so a TCP answer is the real one); PyMySQL raises several kinds of
        errors while it starts."""
        server = MysqlServer(
            provider=self.engine.name,
            host="127.0.0.1",
            port=port,
            user=ADMIN,
            password=self.password,
            unix_socket=None,
            version="?",
            log=self.log(),
        )
        with server.connect(connect_timeout=2) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            row = cursor.fetchone()
        version = str(row[0] if row else "?").split("-")[0]
        return replace(server, version=version, unix_socket=self.socket_file("mysqld.sock"))
