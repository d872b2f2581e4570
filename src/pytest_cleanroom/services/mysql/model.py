"""What the ``mysql`` fixtures hand to tests: the MariaDB server and a database on it.

PyMySQL (pure Python) is imported only when a connection is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from ..model import LogSource, _Server, _TestHandle
from .log import mysql_lines

if TYPE_CHECKING:
    from pymysql.connections import Connection

#: URL schemes of the drivers :meth:`MysqlDatabase.url_for` knows.
DRIVER_SCHEMES = {
    "mysql": "mysql",
    "pymysql": "mysql+pymysql",
    "mysqldb": "mysql+mysqldb",
    "aiomysql": "mysql+aiomysql",
    "asyncmy": "mysql+asyncmy",
}


def _mysql_url(
    scheme: str, user: str, password: str | None, host: str, port: int, database: str, **query: str
) -> str:
    """``scheme://user:password@host:port/database?query``."""
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    tail = f"?{urlencode(query)}" if query else ""
    return f"{scheme}://{auth}@{host}:{port}/{quote(database, safe='')}{tail}"


def quote_name(name: str) -> str:
    """A MariaDB identifier in backquotes."""
    return "`" + name.replace("`", "``") + "`"


def quote_text(text: str) -> str:
    """A MariaDB string literal (backslashes are escapes in MariaDB's default SQL mode)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class MysqlServer(_Server):
    """The run's MariaDB server (``mysql_server`` fixture); ``user``/``password`` are its
    administrator's."""

    provider: str
    host: str
    port: int
    user: str
    password: str | None
    unix_socket: str | None
    version: str
    log: LogSource = field(default_factory=LogSource)

    def connect_kwargs(
        self, user: str, password: str | None, database: str | None, **kwargs: Any
    ) -> dict[str, Any]:
        """Arguments of ``pymysql.connect`` (the unix socket when there is one)."""
        if self.unix_socket:
            kwargs.setdefault("unix_socket", self.unix_socket)
        else:
            kwargs.setdefault("host", self.host)
            kwargs.setdefault("port", self.port)
        return {"user": user, "password": password or "", "database": database, **kwargs}

    def connect(self, database: str | None = None, **kwargs: Any) -> Connection[Any]:
        """A PyMySQL connection as the administrator."""
        import pymysql

        return pymysql.connect(**self.connect_kwargs(self.user, self.password, database, **kwargs))

    def url(self, database: str = "", driver: str = "pymysql") -> str:
        """SQLAlchemy URL of ``database`` as the administrator (``mysql+pymysql://...``)."""
        scheme = DRIVER_SCHEMES[driver]
        return _mysql_url(scheme, self.user, self.password, self.host, self.port, database)


class MysqlDatabase(_TestHandle[MysqlServer, "Connection[Any]"]):
    """A database and a user that belong to one test alone (``mysql`` fixture)."""

    def __init__(self, server: MysqlServer, dbname: str, *, user: str, password: str) -> None:
        super().__init__(server)
        self.dbname = dbname
        self.user = user
        self._password = password
        #: Users and global variables when the test first asked for the administrator (``None``:
        #: it never did); what changed after that is undone at teardown.
        self.state_before: tuple[frozenset[str], dict[str, str]] | None = None

    @property
    def password(self) -> str | None:
        """The test user's password."""
        return self._password

    def own_log_lines(self, text: str) -> str:
        """The error log's lines naming no other test's database or user (see
        :mod:`.log`)."""
        return mysql_lines(text, self.dbname, self.user)

    @property
    def unix_socket(self) -> str | None:
        """Path of the server's unix socket (``None``: TCP only)."""
        return self.server.unix_socket

    @property
    def uri(self) -> str:
        """``mysql://user:password@host:port/dbname``."""
        return self.url_for("mysql")

    @property
    def url(self) -> str:
        """SQLAlchemy URL: ``mysql+pymysql://user:password@host:port/dbname``."""
        return self.url_for("pymysql")

    def url_for(self, driver: str = "pymysql", *, via_socket: bool = False) -> str:
        """This database's URL for ``driver`` (``mysql``, ``pymysql``, ``mysqldb``,
        ``aiomysql``, ``asyncmy``), over TCP or the unix socket (``?unix_socket=``)."""
        try:
            scheme = DRIVER_SCHEMES[driver]
        except KeyError:
            raise ValueError(
                f"unknown driver {driver!r}: choose one of {', '.join(DRIVER_SCHEMES)}"
            ) from None
        if via_socket and self.unix_socket:
            return _mysql_url(
                scheme,
                self.user,
                self.password,
                "localhost",
                self.port,
                self.dbname,
                unix_socket=self.unix_socket,
            )
        return _mysql_url(scheme, self.user, self.password, self.host, self.port, self.dbname)

    def connect(self, *, superuser: bool = False, **kwargs: Any) -> Connection[Any]:
        """A PyMySQL connection to this database as its user (``superuser=True``: as the
        server's administrator; what it changes server-wide is undone after the test); closed
        for you when the test ends."""
        import pymysql

        if superuser:
            conn = self._hand_out(self.server.connect(self.dbname, **kwargs))
            if self.state_before is None:
                self.state_before = server_state(conn)
            return conn
        params = self.server.connect_kwargs(self.user, self.password, self.dbname, **kwargs)
        return self._hand_out(pymysql.connect(**params))

    def sandbox_env(self) -> dict[str, str]:
        """Variables for ``mariadb``/``mysql`` clients and programs: ``MYSQL_UNIX_PORT`` (the
        socket) or ``MYSQL_HOST``/``MYSQL_TCP_PORT``, ``MYSQL_PWD``, ``MYSQL_USER``,
        ``MYSQL_DATABASE``, ``MYSQL_URL`` and ``DATABASE_URL`` (the same URL; a sandboxed
        command gets it only when no other database service is exposed to it)."""
        url = self.url_for("mysql", via_socket=True)
        env = {
            "MYSQL_USER": self.user,
            "MYSQL_PWD": self._password,
            "MYSQL_DATABASE": self.dbname,
            "MYSQL_TCP_PORT": str(self.port),
            "MYSQL_URL": url,
            "DATABASE_URL": url,
        }
        if self.unix_socket:
            env["MYSQL_UNIX_PORT"] = self.unix_socket
        else:
            env["MYSQL_HOST"] = self.host
        return env

    def close_connections(self) -> None:
        """Close every connection :meth:`connect` handed out (done at teardown)."""
        self._close_handed_out()

    def __repr__(self) -> str:
        return f"<MysqlDatabase {self.dbname} on {self.host}:{self.port} ({self.server.provider})>"


def server_state(conn: Connection[Any]) -> tuple[frozenset[str], dict[str, str]]:
    """The server's users (``user@host``) and global variables, as seen by ``conn``."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT CONCAT(User, '@', Host) FROM mysql.global_priv")
        users = frozenset(str(row[0]) for row in cursor.fetchall())
        cursor.execute("SHOW GLOBAL VARIABLES")
        variables = {str(row[0]): str(row[1]) for row in cursor.fetchall()}
    return users, variables
