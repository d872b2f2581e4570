"""Per-test isolation inside one worker: a database cloned per test, a Redis index per worker."""

from __future__ import annotations

import contextlib
import itertools
from typing import TYPE_CHECKING

from .errors import ServiceError, ServiceStartError
from .model import PostgresDatabase, PostgresServer, RedisDatabase, RedisServer

if TYPE_CHECKING:
    import redis as redis_py
    from psycopg.pq.abc import PGconn


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Lane:
    """A raw libpq connection with at most one statement in flight.

    The server works on a statement sent here while the test runs: no client thread is needed
    (a thread would make a test that forks warn, or deadlock).
    """

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self._conn: PGconn | None = None
        self._pending: str | None = None

    def _connection(self) -> PGconn:
        from psycopg import pq

        if self._conn is None or self._conn.status != pq.ConnStatus.OK:
            conn = pq.PGconn.connect(self.server.conninfo().encode())
            if conn.status != pq.ConnStatus.OK:
                message = conn.get_error_message()
                conn.finish()
                raise ServiceStartError(f"cannot connect to postgres: {message}")
            self._conn = conn
        return self._conn

    def send(self, statement: str, tag: str) -> str | None:
        """Wait for the previous statement (returning its error), then send ``statement``."""
        error = self.wait()
        self._connection().send_query(statement.encode())
        self._pending = tag
        return error

    def wait(self) -> str | None:
        """Block until the statement in flight is done; its error message, or ``None``."""
        if self._pending is None or self._conn is None:
            return None
        from psycopg import pq

        error = None
        while (result := self._conn.get_result()) is not None:
            if result.status == pq.ExecStatus.FATAL_ERROR:
                error = result.get_error_message().strip()
        self._pending = None
        return error

    def run(self, statement: str) -> str | None:
        """Send ``statement`` and wait for it; its error message, or ``None``."""
        self.send(statement, "now")
        return self.wait()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.wait()
        if self._conn is not None:
            self._conn.finish()
            self._conn = None


class DatabaseFactory:
    """Creates ``<prefix><n>`` from the run's template for each test and drops it afterwards.

    Both happen mostly off the test's clock: the next test's database is being created by the
    server while the current test runs, and a finished test's database is dropped while the next
    one starts. ``close()`` waits for both and drops whatever is left.
    """

    def __init__(
        self, server: PostgresServer, template: str, prefix: str, *, background: bool = True
    ) -> None:
        self.server = server
        self.template = template
        self.prefix = prefix
        self.background = background
        self._counter = itertools.count(1)
        self._creates = _Lane(server)
        self._drops = _Lane(server)
        self._spare: str | None = None
        self._open: set[str] = set()

    def _create_statement(self, name: str) -> str:
        statement = f"CREATE DATABASE {_ident(name)} TEMPLATE {_ident(self.template)}"
        if self.server.version_num >= 150000:
            # For small databases copying the files beats replaying them through the WAL.
            statement += " STRATEGY FILE_COPY"
        return statement

    def _drop_statement(self, name: str) -> str:
        if self.server.version_num >= 130000:
            return f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)"
        return (  # before 13: terminate the sessions, then drop
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}'; DROP DATABASE IF EXISTS {_ident(name)}"
        )

    def _new_name(self) -> str:
        name = f"{self.prefix}{next(self._counter)}"
        self._open.add(name)
        return name

    def create(self) -> PostgresDatabase:
        """A new database, cloned from the template, that belongs to the calling test alone."""
        name, self._spare = self._spare, None
        if name is not None and self._creates.wait() is not None:
            self._open.discard(name)  # the spare failed: try again here and report that error
            name = None
        if name is None:
            name = self._new_name()
            error = self._creates.run(self._create_statement(name))
            if error is not None:
                self._open.discard(name)
                raise ServiceStartError(f"cannot create the test database {name}: {error}")
        if self.background:
            spare = self._new_name()
            self._creates.send(self._create_statement(spare), spare)
            self._spare = spare
        return PostgresDatabase(self.server, name)

    def drop(self, database: PostgresDatabase) -> None:
        """Close the test's connections and drop its database, even if sessions are still open."""
        database.close_connections()
        if self.background:
            self._drops.send(self._drop_statement(database.dbname), database.dbname)
        else:
            self._drops.run(self._drop_statement(database.dbname))
        self._open.discard(database.dbname)

    def close(self) -> None:
        """Finish the statements in flight, drop anything left, close the connections."""
        self._creates.wait()
        self._drops.wait()
        self._spare = None
        for name in sorted(self._open):
            self._drops.run(self._drop_statement(name))
        self._open.clear()
        self._creates.close()
        self._drops.close()


class RedisSlot:
    """This worker's Redis database index: ``db_base + worker index``, flushed around each test."""

    def __init__(self, server: RedisServer, worker_index: int, worker_id: str) -> None:
        self.server = server
        self.db = server.db_base + worker_index
        if self.db >= server.databases:
            raise ServiceError(
                f"Redis has {server.databases} databases but worker {worker_id} needs index "
                f"{self.db}: run fewer xdist workers, lower the URL's database number, or raise "
                "the server's 'databases' setting"
            )
        self._admin: redis_py.Redis | None = None
        self._flushed = False

    def _client(self) -> redis_py.Redis:
        if self._admin is None:
            self._admin = self.server.client(self.db)
        return self._admin

    def flush(self) -> None:
        """Empty this worker's database (and only it)."""
        self._client().flushdb()

    def acquire(self) -> RedisDatabase:
        if not self._flushed:  # whatever a crashed earlier run left in this index
            self.flush()
            self._flushed = True
        return RedisDatabase(self.server, self.db)

    def release(self, database: RedisDatabase) -> None:
        database.close_clients()
        self.flush()

    def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None
