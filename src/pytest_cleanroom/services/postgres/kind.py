"""The ``postgres`` kind: one PostgreSQL server per run, a database cloned per test."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import binaries
from ..errors import ServiceUnavailableError
from ..protocol import Exposure, RunContext, ServiceKind
from ..registry import Handle
from ..settings import ENV_POSTGRES_URL, ServiceSettings
from .isolation import DatabaseFactory
from .model import PostgresDatabase, PostgresServer
from .template import run_template, server_key

if TYPE_CHECKING:
    from ..hub import ServiceHub
    from ..model import LogSource


class PostgresKind(ServiceKind[PostgresServer, PostgresDatabase]):
    """PostgreSQL: ``initdb``/``postgres`` from the machine, a container, or a URL."""

    name = "postgres"
    starters = {
        "process": ".postgres.process:start_postgres",
        "external": ".postgres.external:connect_external",
    }
    container = ".postgres.container:PostgresContainer"
    install_hint = binaries.POSTGRES_INSTALL_HINT
    url_env = ENV_POSTGRES_URL
    client_module = "psycopg"
    fixture_doc = (
        "A PostgreSQL database of this test's own, cloned from the run's template, then dropped."
    )
    server_doc = "The run's PostgreSQL server, shared by every test and xdist worker."

    def binary_detail(self, settings: ServiceSettings) -> str | None:
        pg = binaries.find_postgres(settings.postgres_bin_dir, settings.postgres_version)
        return f"postgres {pg.version} in {pg.bin_dir}" if pg else None

    def url(self, settings: ServiceSettings) -> tuple[str | None, str]:
        return settings.postgres_url, settings.postgres_url_source

    def missing_binaries(self, settings: ServiceSettings) -> str:
        if settings.postgres_version is None:
            return self.install_hint
        try:
            binaries.require_postgres(settings.postgres_bin_dir, settings.postgres_version)
        except ServiceUnavailableError as exc:
            return str(exc)
        return self.install_hint

    def state_key(self, settings: ServiceSettings, run: RunContext, provider: str | None) -> str:
        return server_key("postgres", settings)

    def stop(self, handle: Handle) -> str:
        if handle.get("kind") == "external-postgres":
            from .external import drop_run_databases

            return drop_run_databases(handle)
        return super().stop(handle)

    def server_from_json(self, data: dict[str, Any]) -> PostgresServer:
        return PostgresServer.from_json(data)

    def isolation(self, server: PostgresServer, hub: ServiceHub) -> DatabaseFactory:
        return self.factory(server, hub, run_template(hub), hub.run.worker_prefix)

    @staticmethod
    def factory(
        server: PostgresServer, hub: ServiceHub, template: str, prefix: str
    ) -> DatabaseFactory:
        """Databases named ``<prefix><n>`` cloned from ``template`` on ``server``."""
        owner = template if template != "template0" and server.manages_roles else None
        return DatabaseFactory(
            server,
            template,
            prefix,
            template_owner=owner,
            # A server of the run's own (process, docker) goes, data and all, with the run.
            drop_leftovers=server.provider == "external",
        )

    def expose(self, handle: PostgresDatabase) -> Exposure:
        socket_dir = handle.unix_socket_dir
        env = handle.sandbox_env()
        url = env.pop("DATABASE_URL")
        return Exposure(Path(socket_dir) if socket_dir else None, env, database_url=url)

    def health(self, server: PostgresServer) -> str | None:
        from psycopg import pq

        conn = pq.PGconn.connect(f"{server.conninfo()} connect_timeout=2".encode())
        try:
            if conn.status != pq.ConnStatus.OK:
                return f"postgres does not answer: {conn.get_error_message()}"
        finally:
            conn.finish()
        return None

    def log(self, handle: PostgresDatabase) -> LogSource:
        return handle.server.log

    def own_log_lines(self, handle: PostgresDatabase, text: str) -> str:
        return handle.own_log_lines(text)
