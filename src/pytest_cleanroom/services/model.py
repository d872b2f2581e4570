"""What the fixtures hand to tests: servers and the per-test databases on them.

psycopg and redis-py are imported only when a connection or client is asked for.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar
from urllib.parse import quote, urlencode

from .server_log import postgres_lines

if TYPE_CHECKING:
    import psycopg
    import redis as redis_py
    import redis.asyncio as redis_async


@dataclass(frozen=True)
class LogSource:
    """Where a server writes its log: a file (process), a container (docker, podman) or nowhere."""

    kind: str = "none"
    path: str | None = None
    container_id: str | None = None
    docker_host: str | None = None

    def mark(self) -> float:
        """A position to read from later: a byte offset (file) or a timestamp (container)."""
        if self.kind == "file" and self.path:
            try:
                return float(Path(self.path).stat().st_size)
            except OSError:
                return 0.0
        return time.time()

    def read(
        self,
        since: float | None = None,
        max_lines: int = 60,
        keep: Callable[[str], str] | None = None,
    ) -> str:
        """The last ``max_lines`` lines, only those written after ``since`` if given, of those
        that ``keep`` (a filter of the whole text) keeps."""
        text = ""
        if self.kind == "file" and self.path:
            try:
                with open(self.path, "rb") as fh:
                    if since is not None:
                        fh.seek(int(since))
                    else:
                        with contextlib.suppress(OSError):
                            fh.seek(-64 * 1024, 2)
                    text = fh.read().decode(errors="replace")
            except OSError:
                return ""
        elif self.kind == "container" and self.container_id:
            from .container_provider import container_logs

            text = container_logs(self, since=since, max_lines=None if keep else max_lines)
        if keep is not None:
            text = keep(text)
        lines = text.splitlines()
        return "\n".join(lines[-max_lines:])


class _Server:
    """What both servers share: where they listen, their log, their JSON form (the run's state
    file hands it to every xdist worker). Subclasses are frozen dataclasses."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    host: str
    port: int
    password: str | None
    version: str
    log: LogSource

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the server's log ("" when the provider has none, e.g. external)."""
        return self.log.read(max_lines=lines)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls: type[ServerT], data: dict[str, Any]) -> ServerT:
        fields = dict(data)
        fields["log"] = LogSource(**fields.get("log", {}))
        return cls(**fields)


ServerT = TypeVar("ServerT", bound=_Server)


class _Closable(Protocol):
    def close(self) -> None: ...


ClosableT = TypeVar("ClosableT", bound=_Closable)


class _TestHandle(Generic[ServerT, ClosableT]):
    """What both per-test handles share: the server's address, and the connections or clients
    handed to the test, closed for it at teardown."""

    def __init__(self, server: ServerT) -> None:
        self.server = server
        self._handed_out: list[ClosableT] = []

    @property
    def host(self) -> str:
        """TCP host (127.0.0.1 unless external)."""
        return self.server.host

    @property
    def port(self) -> int:
        """TCP port."""
        return self.server.port

    @property
    def password(self) -> str | None:
        """Password (``None`` if the server needs none)."""
        return self.server.password

    @property
    def version(self) -> str:
        """Server version, e.g. ``15.18`` (PostgreSQL) or ``7.0.15`` (Redis)."""
        return self.server.version

    def own_log_lines(self, text: str) -> str:
        """The lines of the server's log ``text`` that concern this test (all, unless the
        server is shared with other tests running at the same time)."""
        return text

    def _hand_out(self, resource: ClosableT) -> ClosableT:
        self._handed_out.append(resource)
        return resource

    def _close_handed_out(self) -> None:
        for resource in self._handed_out:
            with contextlib.suppress(Exception):
                resource.close()
        self._handed_out.clear()


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
        """This database's lines and the server-wide ones (see :mod:`.server_log`)."""
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
        role, through the unix socket when there is one (it works without a network)."""
        socket_dir = self.server.unix_socket_dir
        host = socket_dir or self.server.host
        env = {
            "PGHOST": host,
            "PGPORT": str(self.server.port),
            "PGUSER": self.user,
            "PGDATABASE": self.dbname,
            "DATABASE_URL": self.url_for("libpq", via_socket=True),
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


@dataclass(frozen=True)
class RedisServer(_Server):
    """A running Redis server shared by the whole run (``redis_server`` fixture)."""

    provider: str
    host: str
    port: int
    password: str | None
    unix_socket: str | None
    version: str
    databases: int
    db_base: int = 0
    username: str | None = None
    tls: bool = False
    log: LogSource = field(default_factory=LogSource)
    #: Password of the ``default`` user, whose rights are narrowed for sandboxes (``None``: the
    #: server is not ours to narrow, e.g. external; sandboxes get the URL's user).
    sandbox_password: str | None = None
    #: This server serves one xdist worker alone (process and container providers).
    dedicated: bool = False

    def url(self, db: int = 0) -> str:
        """``redis://[:password@]host:port/db`` (``rediss://`` for TLS)."""
        auth = ""
        if self.password:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{auth}{self.host}:{self.port}/{db}"

    def client(self, db: int = 0, **kwargs: Any) -> redis_py.Redis:
        """A redis-py client on database ``db`` (over the unix socket when there is one)."""
        import redis as redis_py

        return redis_py.Redis(**self.client_kwargs(db, kwargs))

    def client_kwargs(self, db: int, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Arguments of a redis-py client (sync or asyncio) on ``db``, ``kwargs`` on top."""
        if self.unix_socket:
            kwargs.setdefault("unix_socket_path", self.unix_socket)
        else:
            kwargs.setdefault("host", self.host)
            kwargs.setdefault("port", self.port)
            kwargs.setdefault("ssl", self.tls)
        return {"db": db, "username": self.username, "password": self.password, **kwargs}


class RedisDatabase(_TestHandle[RedisServer, "redis_py.Redis"]):
    """A Redis database index no other test uses at the same moment, emptied after the test.

    ``host``, ``port``, ``password`` and ``version`` are the server's.
    """

    def __init__(self, server: RedisServer, db: int) -> None:
        super().__init__(server)
        self.db = db

    @property
    def unix_socket(self) -> str | None:
        """Path of the server's unix socket (``None``: TCP only)."""
        return self.server.unix_socket

    @property
    def url(self) -> str:
        """``redis://[:password@]host:port/db`` of this test's database."""
        return self.server.url(self.db)

    def client(self, **kwargs: Any) -> redis_py.Redis:
        """A redis-py client selected on this test's database; closed when the test ends."""
        return self._hand_out(self.server.client(self.db, **kwargs))

    def aclient(self, **kwargs: Any) -> redis_async.Redis:
        """A ``redis.asyncio`` client selected on this test's database (``await
        client.aclose()`` it, or use ``async with``)."""
        import redis.asyncio as redis_async

        return redis_async.Redis(**self.server.client_kwargs(self.db, kwargs))

    def sandbox_env(self) -> dict[str, str]:
        """Variables that let ``redis-cli`` and clients in a sandbox reach this database, as the
        ``default`` user whose rights are narrowed (no admin, scripting or FLUSHALL) when the
        server is ours."""
        server = self.server
        username, password = server.username, server.password
        if server.sandbox_password is not None:
            username, password = None, server.sandbox_password
        env = {"REDIS_DB": str(self.db)}
        auth = ""
        if password:
            auth = f"{quote(username or '', safe='')}:{quote(password, safe='')}@"
            env["REDISCLI_AUTH"] = password
        if username:
            env["REDIS_USER"] = username
        if server.unix_socket:
            env["REDIS_SOCKET"] = server.unix_socket
            env["REDIS_URL"] = f"unix://{auth}{server.unix_socket}?db={self.db}"
        else:
            scheme = "rediss" if server.tls else "redis"
            env["REDIS_URL"] = f"{scheme}://{auth}{server.host}:{server.port}/{self.db}"
        return env

    def close_clients(self) -> None:
        """Close every client :meth:`client` handed out (done at teardown)."""
        self._close_handed_out()

    def __repr__(self) -> str:
        return f"<RedisDatabase db={self.db} on {self.host}:{self.port} ({self.server.provider})>"
