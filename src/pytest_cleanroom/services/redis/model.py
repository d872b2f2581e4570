"""What the ``redis`` fixtures hand to tests: the server and a database index on it.

redis-py is imported only when a client is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ..model import LogSource, _Server, _TestHandle

if TYPE_CHECKING:
    import redis as redis_py
    import redis.asyncio as redis_async


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
