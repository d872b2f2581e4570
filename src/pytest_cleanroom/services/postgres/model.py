"""What the ``postgres`` fixtures hand to tests: the server and a database on it.

psycopg is imported only when a connection is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from ..model import LogSource, _Server, _TestHandle
from .log import postgres_lines

if TYPE_CHECKING:
    import psycopg


def _conninfo(params: dict[str, Any]) -> str:
    """A libpq ``key=value`` string with values quoted as libpq expects."""
    parts = []
    for key, value in params.items():
        if value is None or value == "":
            continue
        text = str(value).replace("\\", "\\\\").replace("'", "\\'")
        if not text or any(c in text for c in " '\\"):
            text = f"'{text}'"
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _pg_uri(
    scheme: str, user: str, password: str | None, host: str, port: int, dbname: str, **query: str
) -> str:
    """``scheme://user:password@host:port/dbname?query``; a unix socket directory as ``host``
    goes into the query (``@/dbname?host=/dir&port=N``), the form libpq, asyncpg and
    SQLAlchemy all accept."""
    auth = quote(user, safe="")
    if password:
        auth += ":" + quote(password, safe="")
    name = quote(dbname, safe="")
    if host.startswith("/"):
        query = {"host": host, "port": str(port), **query}
        return f"{scheme}://{auth}@/{name}?{urlencode(query)}"
    tail = f"?{urlencode(query)}" if query else ""
    return f"{scheme}://{auth}@{host}:{port}/{name}{tail}"


#: URL schemes of the drivers :meth:`PostgresDatabase.url_for` knows.
DRIVER_SCHEMES = {
    "libpq": "postgresql",
    "psycopg": "postgresql+psycopg",
    "psycopg_async": "postgresql+psycopg_async",
    "asyncpg": "postgresql+asyncpg",
    "psycopg2": "postgresql+psycopg2",
}


@dataclass(frozen=True)
class PostgresServer(_Server):
    """A running PostgreSQL server shared by the whole run (``postgres_server`` fixture).

    ``user``/``password`` are the server's superuser (or an external URL's user);
    ``manages_roles``: the plugin gives every test database a least-privilege role of its own.
    """

    provider: str
    host: str
    port: int
    user: str
    password: str | None
    unix_socket_dir: str | None
    version: str
    version_num: int
    admin_dbname: str = "postgres"
    options: dict[str, str] = field(default_factory=dict)
    log: LogSource = field(default_factory=LogSource)
    manages_roles: bool = False

    def params(self, dbname: str | None = None, *, via_socket: bool = False) -> dict[str, Any]:
        """libpq parameters for ``dbname`` over TCP, or over the unix socket if asked and known."""
        host = self.unix_socket_dir if via_socket and self.unix_socket_dir else self.host
        return {
            "host": host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "dbname": dbname or self.admin_dbname,
            **self.options,
        }

    def dsn(self, dbname: str | None = None) -> str:
        """libpq connection string (``key=value``) for ``dbname`` over TCP."""
        return _conninfo(self.params(dbname))

    def conninfo(self, dbname: str | None = None) -> str:
        """Like :meth:`dsn`, over the unix socket when there is one (what ``connect`` uses)."""
        return _conninfo(self.params(dbname, via_socket=True))

    def url(self, dbname: str | None = None, driver: str | None = "psycopg") -> str:
        """SQLAlchemy URL (``postgresql+psycopg://``); ``driver=None`` gives a libpq URI."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        name = dbname or self.admin_dbname
        return _pg_uri(scheme, self.user, self.password, self.host, self.port, name, **self.options)

    def connect(self, dbname: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        """A psycopg 3 connection to ``dbname`` (the unix socket when there is one)."""
        import psycopg

        return psycopg.connect(self.conninfo(dbname), **kwargs)


class PostgresDatabase(_TestHandle[PostgresServer, "psycopg.Connection[Any]"]):
    """A database that belongs to one test alone (``postgres`` fixture), dropped afterwards.

    ``user``/``password`` are the database's own role (its owner, no server-level rights) when the
    server ``manages_roles``, else the server's. ``host``, ``port`` and ``version`` are the
    server's.
    """

    def __init__(
        self,
        server: PostgresServer,
        dbname: str,
        *,
        role: str | None = None,
        role_password: str | None = None,
    ) -> None:
        super().__init__(server)
        self.dbname = dbname
        self.role = role
        self._role_password = role_password
        #: The server's roles when the test first asked for a superuser connection (``None``:
        #: it never did); roles created after that are dropped at teardown.
        self.roles_before: frozenset[str] | None = None

    def own_log_lines(self, text: str) -> str:
        """This database's lines and the server-wide ones (see :mod:`.log`)."""
        return postgres_lines(text, self.dbname)

    @property
    def user(self) -> str:
        """The role the test and its sandbox connect as: this database's owner."""
        return self.role or self.server.user

    @property
    def password(self) -> str | None:
        """Password of :attr:`user`."""
        return self._role_password if self.role else self.server.password

    @property
    def unix_socket_dir(self) -> str | None:
        """Directory of the server's unix socket (``None``: TCP only)."""
        return self.server.unix_socket_dir

    def params(self, *, via_socket: bool = False) -> dict[str, Any]:
        """libpq parameters of this database and its role (TCP, or the unix socket)."""
        return {
            **self.server.params(self.dbname, via_socket=via_socket),
            "user": self.user,
            "password": self.password,
        }

    @property
    def dsn(self) -> str:
        """libpq connection string (``key=value``) over TCP: psycopg, psql, libpq programs."""
        return _conninfo(self.params())

    @property
    def uri(self) -> str:
        """``postgresql://user:password@host:port/dbname``: psycopg, asyncpg, psql, libpq."""
        return self.url_for("libpq")

    @property
    def url(self) -> str:
        """SQLAlchemy URL: ``postgresql+psycopg://user:password@host:port/dbname``."""
        return self.url_for("psycopg")

    @property
    def async_url(self) -> str:
        """SQLAlchemy URL for ``create_async_engine``: ``postgresql+asyncpg://...``."""
        return self.url_for("asyncpg")

    def url_for(self, driver: str = "libpq", *, via_socket: bool = False) -> str:
        """This database's URL for ``driver`` (``libpq``, ``psycopg``, ``psycopg_async``,
        ``asyncpg``, ``psycopg2``), over TCP or the unix socket."""
        try:
            scheme = DRIVER_SCHEMES[driver]
        except KeyError:
            raise ValueError(
                f"unknown driver {driver!r}: choose one of {', '.join(DRIVER_SCHEMES)}"
            ) from None
        p = self.params(via_socket=via_socket)
        return _pg_uri(scheme, self.user, self.password, p["host"], self.port, self.dbname)

    def connect(self, *, superuser: bool = False, **kwargs: Any) -> psycopg.Connection[Any]:
        """A psycopg 3 connection to this database as its role (``superuser=True``: as the
        server's superuser, see docs/services.md); closed for you when the test ends."""
        import psycopg

        if superuser:
            conn = self._hand_out(self.server.connect(self.dbname, **kwargs))
            if self.roles_before is None:
                rows = conn.execute("SELECT rolname FROM pg_roles").fetchall()
                self.roles_before = frozenset(str(row[0]) for row in rows)
                if not conn.autocommit:
                    conn.rollback()
            return conn
        return self._hand_out(psycopg.connect(_conninfo(self.params(via_socket=True)), **kwargs))

    async def aconnect(self, **kwargs: Any) -> psycopg.AsyncConnection[Any]:
        """A psycopg 3 async connection to this database as its role (close it yourself, or use
        ``async with``)."""
        import psycopg

        return await psycopg.AsyncConnection.connect(
            _conninfo(self.params(via_socket=True)), **kwargs
        )

    def sandbox_env(self) -> dict[str, str]:
        """Variables that let ``psql`` and libpq programs in a sandbox reach this database as its
        role, through the unix socket when there is one (it works without a network):
        ``PG*``, ``POSTGRES_URL`` and ``DATABASE_URL`` (the same URL; a sandboxed command gets
        it only when no other database service is exposed to it)."""
        socket_dir = self.server.unix_socket_dir
        host = socket_dir or self.server.host
        url = self.url_for("libpq", via_socket=True)
        env = {
            "PGHOST": host,
            "PGPORT": str(self.server.port),
            "PGUSER": self.user,
            "PGDATABASE": self.dbname,
            "POSTGRES_URL": url,
            "DATABASE_URL": url,
        }
        if self.password:
            env["PGPASSWORD"] = self.password
        return env

    def close_connections(self) -> None:
        """Close every connection :meth:`connect` handed out (done at teardown)."""
        self._close_handed_out()

    def __repr__(self) -> str:
        return (
            f"<PostgresDatabase {self.dbname} on {self.host}:{self.port} ({self.server.provider})>"
        )
