"""Per-test isolation inside one worker: a database cloned per test, a Redis index per worker."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from .errors import ServiceError, ServiceStartError
from .model import PostgresDatabase, PostgresServer, RedisDatabase, RedisServer

if TYPE_CHECKING:
    import psycopg
    import redis as redis_py


class DatabaseFactory:
    """Creates ``<prefix><worker>_<n>`` from the run's template and drops it after the test."""

    def __init__(self, server: PostgresServer, template: str, prefix: str) -> None:
        self.server = server
        self.template = template
        self.prefix = prefix
        self._counter = 0
        self._admin: psycopg.Connection[Any] | None = None
        self._open: set[str] = set()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._admin is None or self._admin.closed or self._admin.broken:
            self._admin = self.server.connect(autocommit=True)
        return self._admin

    def _execute(self, statement: Any) -> None:
        import psycopg

        try:
            self._connection().execute(statement)
        except psycopg.OperationalError:
            # The admin connection died (server restart, idle timeout): one fresh try.
            self._admin = None
            self._connection().execute(statement)

    def create(self) -> PostgresDatabase:
        """A new, empty-or-templated database that belongs to the calling test alone."""
        import psycopg
        from psycopg import sql

        self._counter += 1
        name = f"{self.prefix}{self._counter}"
        statement = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(self.template)
        )
        if self.server.version_num >= 150000:
            # For small databases copying the files beats replaying them through the WAL.
            statement = sql.Composed([statement, sql.SQL(" STRATEGY FILE_COPY")])
        try:
            self._execute(statement)
        except psycopg.Error as exc:
            raise ServiceStartError(f"cannot create the test database {name}: {exc}") from None
        self._open.add(name)
        return PostgresDatabase(self.server, name)

    def drop(self, database: PostgresDatabase) -> None:
        """Close the test's connections and drop its database, even if sessions are still open."""
        from psycopg import sql

        database.close_connections()
        ident = sql.Identifier(database.dbname)
        if self.server.version_num >= 130000:
            self._execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        else:
            self._execute(
                sql.SQL(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {}"
                ).format(sql.Literal(database.dbname))
            )
            self._execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(ident))
        self._open.discard(database.dbname)

    def close(self) -> None:
        """Drop anything left (a teardown that failed) and close the admin connection."""
        for name in list(self._open):
            with contextlib.suppress(Exception):
                self.drop(PostgresDatabase(self.server, name))
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None


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
