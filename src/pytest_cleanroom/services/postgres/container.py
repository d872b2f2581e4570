"""PostgreSQL in a container (``cleanroom_postgres_image``, the official image's contract).

The server listens on the same port inside and outside, so that its unix socket
(``.s.PGSQL.<port>``, in the bind-mounted socket directory) matches the published TCP port. It
runs with the plugin's own ``pg_hba.conf`` (mounted read-only), durability off and its data on
a tmpfs; the shared start is :class:`~.container_provider.ContainerService`'s.
"""

from __future__ import annotations

import secrets
import shlex
from typing import Any

from ..container_provider import ContainerService
from . import roles as pg_roles
from .log import POSTGRES_LOG_LINE_PREFIX
from .model import PostgresServer

POSTGRES_USER = "cleanroom"
CONTAINER_HBA = "/etc/cleanroom/pg_hba.conf"


class PostgresContainer(ContainerService[PostgresServer]):
    """The run's PostgreSQL server in a container."""

    service = "postgres"
    image_key = "cleanroom_postgres_image"
    port_key = "cleanroom_postgres_port"

    def image(self) -> str:
        return self.settings.postgres_image

    def fixed_port(self) -> int:
        return self.settings.postgres_port

    def prepare(self) -> None:
        self.password = secrets.token_urlsafe(18)
        hba = self.server_dir / "pg_hba.conf"
        hba.write_text(pg_roles.hba_rules(POSTGRES_USER, address="all"))  # clients come via NAT
        hba.chmod(0o644)  # the directory above keeps other users out

    def check_image(self, client: Any) -> None:
        """Refuse an image whose ``PG_MAJOR`` (set by the official images and ours) is not the
        asked major; one without it is checked once it answers."""
        image = self.settings.postgres_image
        env = client.images.get(image).attrs.get("Config", {}).get("Env") or []
        major = next((e.split("=", 1)[1] for e in env if e.startswith("PG_MAJOR=")), "")
        if major.isdigit():
            self.settings.check_postgres_major(int(major) * 10000, f"image {image}")

    def container(self, port: int) -> Any:
        command = (
            f"postgres -c port={port} -c fsync=off -c synchronous_commit=off "
            f"-c full_page_writes=off -c max_connections=200 -c hba_file={CONTAINER_HBA} "
            f"-c {shlex.quote('log_line_prefix=' + POSTGRES_LOG_LINE_PREFIX)}"
        )
        command += "".join(f" -c {k}={v}" for k, v in self.settings.postgres_settings)
        container = (
            self.new_container(
                _quiet_postgres_class(),
                self.settings.postgres_image,
                port=port,
                username=POSTGRES_USER,
                password=self.password,
                dbname="postgres",
                driver=None,
            )
            .with_env("PGPORT", str(port))
            .with_env("POSTGRES_INITDB_ARGS", "--no-sync")
            .with_volume_mapping(str(self.socket_dir), "/var/run/postgresql", "rw")
            .with_volume_mapping(str(self.server_dir / "pg_hba.conf"), CONTAINER_HBA, "ro")
            .with_tmpfs_mount("/var/lib/postgresql/data")
            .with_command(command)
        )
        container.ports[f"{port}/tcp"] = ("127.0.0.1", port)  # loopback only
        return container

    def starting_errors(self) -> tuple[type[Exception], ...]:
        import psycopg

        return (psycopg.OperationalError,)

    def probe(self, port: int) -> PostgresServer:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=port,
            user=POSTGRES_USER,
            password=self.password,
            dbname="postgres",
            connect_timeout=2,
            autocommit=True,
        ) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            # The official entrypoint's temporary server listens on the socket only, so a TCP
            # answer is the real server.
            pg_roles.secure_superuser(conn, POSTGRES_USER, self.password)
            version_num = conn.info.server_version
        image = f"image {self.settings.postgres_image}"
        self.settings.check_postgres_major(version_num, image)
        has_socket = self.socket_file(f".s.PGSQL.{port}") is not None
        return PostgresServer(
            provider=self.engine.name,
            host="127.0.0.1",
            port=port,
            user=POSTGRES_USER,
            password=self.password,
            unix_socket_dir=str(self.socket_dir) if has_socket else None,
            version=str(row[0] if row else "?").split()[0],
            version_num=version_num,
            log=self.log(),
            manages_roles=True,
        )


def _quiet_postgres_class() -> Any:
    from testcontainers.community.postgres import PostgresContainer as Base

    class QuietPostgres(Base):
        """testcontainers' PostgresContainer without its exec-based wait: we poll over TCP."""

        def _connect(self) -> None:
            return None

    return QuietPostgres
