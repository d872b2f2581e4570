"""Per-test isolation inside one worker: a database cloned per test, a Redis index per worker."""

from __future__ import annotations

import contextlib
import itertools
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .errors import ServiceError, ServiceStartError
from .model import PostgresDatabase, PostgresServer, RedisDatabase, RedisServer

if TYPE_CHECKING:
    import psycopg
    import redis as redis_py


class DatabaseFactory:
    """Creates ``<prefix><n>`` from the run's template for each test and drops it afterwards.

    Both happen mostly off the test's clock: one background thread (with its own connection)
    prepares the next test's database while the current test runs, and drops a finished test's
    database after its teardown returned. ``close()`` waits for that thread and drops leftovers.
    """

    def __init__(
        self, server: PostgresServer, template: str, prefix: str, *, background: bool = True
    ) -> None:
        self.server = server
        self.template = template
        self.prefix = prefix
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._open: set[str] = set()
        self._connections: dict[int, psycopg.Connection[Any]] = {}
        self._pool = (
            ThreadPoolExecutor(1, thread_name_prefix="cleanroom-db") if background else None
        )
        self._spare: Future[str] | None = None

    # -- statements, on the calling thread's own admin connection ------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        key = threading.get_ident()
        conn = self._connections.get(key)
        if conn is None or conn.closed or conn.broken:
            conn = self._connections[key] = self.server.connect(autocommit=True)
        return conn

    def _execute(self, statement: Any) -> None:
        import psycopg

        try:
            self._connection().execute(statement)
        except psycopg.OperationalError:
            # The admin connection died (server restart, idle timeout): one fresh try.
            self._connections.pop(threading.get_ident(), None)
            self._connection().execute(statement)

    def _create_now(self) -> str:
        import psycopg
        from psycopg import sql

        name = f"{self.prefix}{next(self._counter)}"
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(self.template)
        )
        if self.server.version_num >= 150000:
            # For small databases copying the files beats replaying them through the WAL.
            statement = sql.Composed([statement, sql.SQL(" STRATEGY FILE_COPY")])
        with self._lock:
            self._open.add(name)
        try:
            self._execute(statement)
        except psycopg.Error as exc:
            with self._lock:
                self._open.discard(name)
            raise ServiceStartError(f"cannot create the test database {name}: {exc}") from None
        return name

    def _drop_now(self, name: str) -> None:
        from psycopg import sql

        ident = sql.Identifier(name)
        if self.server.version_num >= 130000:
            self._execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        else:
            self._execute(
                sql.SQL(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {}"
                ).format(sql.Literal(name))
            )
            self._execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))
        with self._lock:
            self._open.discard(name)

    # -- what the fixture calls ----------------------------------------------------------------

    def create(self) -> PostgresDatabase:
        """A new database, cloned from the template, that belongs to the calling test alone."""
        name = None
        spare, self._spare = self._spare, None
        if spare is not None:
            with contextlib.suppress(Exception):  # a failed spare: create it here, and say why
                name = spare.result()
        if name is None:
            name = self._create_now()
        if self._pool is not None:
            self._spare = self._pool.submit(self._create_now)
        return PostgresDatabase(self.server, name)

    def drop(self, database: PostgresDatabase) -> None:
        """Close the test's connections and drop its database, even if sessions are still open."""
        database.close_connections()
        if self._pool is not None:
            self._pool.submit(self._drop_now, database.dbname)
        else:
            self._drop_now(database.dbname)

    def close(self) -> None:
        """Finish the background work, drop anything left, close the admin connections."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self._spare = None
        with self._lock:
            left = sorted(self._open)
        for name in left:
            with contextlib.suppress(Exception):
                self._drop_now(name)
        for conn in self._connections.values():
            with contextlib.suppress(Exception):
                conn.close()
        self._connections.clear()


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
