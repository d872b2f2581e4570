"""The ``mysql`` kind: one MariaDB server per run, a database and a user per test."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import binaries
from ..protocol import Exposure, ServiceKind
from ..registry import Handle
from ..settings import ENV_MYSQL_URL, ServiceSettings
from .isolation import MysqlDatabaseFactory
from .model import MysqlDatabase, MysqlServer

if TYPE_CHECKING:
    from ..hub import ServiceHub
    from ..model import LogSource


class MysqlKind(ServiceKind[MysqlServer, MysqlDatabase]):
    """MariaDB: ``mariadbd`` from the machine, a container, or a URL."""

    name = "mysql"
    starters = {
        "process": ".mysql.process:start_mysql",
        "external": ".mysql.external:connect_mysql",
    }
    container = ".mysql.container:MysqlContainer"
    install_hint = binaries.MYSQL_INSTALL_HINT
    url_env = ENV_MYSQL_URL
    client_module = "pymysql"
    fixture_doc = "A MariaDB database and user of this test's own, dropped afterwards."
    server_doc = "The run's MariaDB server, shared by every test and xdist worker."

    def url(self, settings: ServiceSettings) -> tuple[str | None, str]:
        return settings.mysql_url, settings.mysql_url_source

    def binary_detail(self, settings: ServiceSettings) -> str | None:
        found = binaries.find_mysql(settings.mysql_bin_dir)
        return f"mariadbd {found.version} at {found.server}" if found else None

    def stop(self, handle: Handle) -> str:
        if handle.get("kind") == "external-mysql":
            from .external import drop_run_objects

            return drop_run_objects(handle)
        return super().stop(handle)

    def server_from_json(self, data: dict[str, Any]) -> MysqlServer:
        return MysqlServer.from_json(data)

    def isolation(self, server: MysqlServer, hub: ServiceHub) -> MysqlDatabaseFactory:
        return MysqlDatabaseFactory(server, hub.run.worker_prefix)

    def expose(self, handle: MysqlDatabase) -> Exposure:
        socket = handle.unix_socket
        env = handle.sandbox_env()
        url = env.pop("DATABASE_URL")
        return Exposure(Path(socket).parent if socket else None, env, database_url=url)

    def health(self, server: MysqlServer) -> str | None:
        try:
            server.connect(connect_timeout=2).close()
        except Exception as exc:
            return f"the MariaDB server does not answer: {exc}"
        return None

    def log(self, handle: MysqlDatabase) -> LogSource:
        return handle.server.log

    def own_log_lines(self, handle: MysqlDatabase, text: str) -> str:
        return handle.own_log_lines(text)
