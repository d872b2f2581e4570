"""Per-test isolation on PostgreSQL: a database (and its role) cloned from the template per test."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ServiceStartError
from ..protocol import Isolation
from . import roles as pg_roles
from .model import PostgresDatabase, PostgresServer
from .roles import ident

if TYPE_CHECKING:
    from psycopg.pq.abc import PGconn


class _Lane:
    """A raw libpq connection with at most one batch of statements in flight.

    A batch goes out in pipeline mode, each statement in a transaction of its own, and the server
    works on it while the test runs: no client thread is needed (a thread would make a test that
    forks warn, or deadlock).
    """

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self._conn: PGconn | None = None
        self._pending = 0

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

    def send(self, statements: Sequence[str]) -> str | None:
        """Wait for the previous batch (returning its first error), then send ``statements``."""
        error = self.wait()
        conn = self._connection()
        conn.enter_pipeline_mode()
        for statement in statements:
            conn.send_query_params(statement.encode(), None)
            conn.pipeline_sync()
        self._pending = len(statements)
        return error

    def wait(self) -> str | None:
        """Block until the batch in flight is done; its first error message, or ``None``."""
        if not self._pending or self._conn is None:
            return None
        from psycopg import pq

        conn, error, synced, idle = self._conn, None, 0, 0
        while synced < self._pending:
            result = conn.get_result()
            if result is None:  # between two statements' results; a dead connection stays here
                idle += 1
                if idle > 2 * self._pending + 2 or conn.status != pq.ConnStatus.OK:
                    error = error or conn.get_error_message() or "connection lost"
                    break
                continue
            idle = 0
            if result.status == pq.ExecStatus.PIPELINE_SYNC:
                synced += 1
            elif result.status == pq.ExecStatus.FATAL_ERROR and error is None:
                error = result.get_error_message().strip()
        self._pending = 0
        with contextlib.suppress(Exception):
            conn.exit_pipeline_mode()
        return error

    def run(self, statements: Sequence[str]) -> str | None:
        """Send ``statements`` and wait for them; the first error message, or ``None``."""
        self.send(statements)
        return self.wait()

    def abandon(self) -> None:
        """Close the connection without waiting: the server finishes the batch in flight."""
        if self._conn is not None:
            self._conn.finish()
            self._conn = None
        self._pending = 0

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.wait()
        if self._conn is not None:
            self._conn.finish()
            self._conn = None


class DatabaseFactory(Isolation[PostgresDatabase]):
    """Creates ``<prefix><n>`` from the run's template for each test and drops it afterwards.

    When the server ``manages_roles``, each database is owned by a login role of the same name
    with a random password and no server-level rights (:mod:`.roles`); ``template_owner`` is the
    role owning the template's objects, of which that role becomes a member.

    Both happen mostly off the test's clock: the next test's database is being created by the
    server while the current test runs, and a finished test's database is dropped while the next
    one starts. ``close()`` waits for both and drops whatever is left, unless ``drop_leftovers``
    is false: on a server that goes away with the run (process and docker providers), the spare
    database is left to go with it.
    """

    def __init__(
        self,
        server: PostgresServer,
        template: str,
        prefix: str,
        *,
        background: bool = True,
        template_owner: str | None = None,
        drop_leftovers: bool = True,
    ) -> None:
        self.server = server
        self.template = template
        self.prefix = prefix
        self.background = background
        self.template_owner = template_owner
        self.drop_leftovers = drop_leftovers
        self._counter = itertools.count(1)
        self._creates = _Lane(server)
        self._drops = _Lane(server)
        self._spare: tuple[str, str] | None = None
        self._open: set[str] = set()

    def _create_statements(self, name: str, password: str) -> list[str]:
        file_copy = self.server.version_num >= 150000
        if self.server.manages_roles:
            return pg_roles.create_owned_database(
                name, password, self.template, member_of=self.template_owner, file_copy=file_copy
            )
        statement = f"CREATE DATABASE {ident(name)} TEMPLATE {ident(self.template)}"
        return [statement + (" STRATEGY FILE_COPY" if file_copy else "")]

    def _drop_statements(self, name: str) -> list[str]:
        if self.server.manages_roles:
            return pg_roles.drop_owned_database(name, self.server.version_num)
        return pg_roles.drop_database(name, self.server.version_num)

    def _new_name(self) -> tuple[str, str]:
        name = f"{self.prefix}{next(self._counter)}"
        self._open.add(name)
        return name, pg_roles.new_password()

    def isolate(self) -> PostgresDatabase:
        """A new database, cloned from the template, that belongs to the calling test alone."""
        made, self._spare = self._spare, None
        if made is not None and self._creates.wait() is not None:
            self._open.discard(made[0])  # the spare failed: try again here and report that error
            self._drops.run(self._drop_statements(made[0]))
            made = None
        if made is None:
            made = self._new_name()
            error = self._creates.run(self._create_statements(*made))
            if error is not None:
                self._open.discard(made[0])
                self._drops.run(self._drop_statements(made[0]))
                raise ServiceStartError(f"cannot create the test database {made[0]}: {error}")
        if self.background:
            spare = self._new_name()
            self._creates.send(self._create_statements(*spare))
            self._spare = spare
        name, password = made
        if not self.server.manages_roles:
            return PostgresDatabase(self.server, name)
        return PostgresDatabase(self.server, name, role=name, role_password=password)

    def reset(self, handle: PostgresDatabase) -> None:
        """Close the test's connections and drop its database (even if sessions are still
        open) and its role; undo server-wide changes if the test used the superuser."""
        handle.close_connections()
        if handle.roles_before is not None and self.server.provider != "external":
            reset_server_state(self.server, handle.roles_before)
        if self.background:
            self._drops.send(self._drop_statements(handle.dbname))
        else:
            self._drops.run(self._drop_statements(handle.dbname))
        self._open.discard(handle.dbname)

    def close(self) -> None:
        """Finish the statements in flight, drop anything left, close the connections."""
        if not self.drop_leftovers:
            self._spare = None
            self._open.clear()
            self._creates.abandon()
            self._drops.abandon()
            return
        self._creates.wait()
        self._drops.wait()
        self._spare = None
        for name in sorted(self._open):
            self._drops.run(self._drop_statements(name))
        self._open.clear()
        self._creates.close()
        self._drops.close()


def reset_server_state(server: PostgresServer, roles_before: frozenset[str]) -> list[str]:
    """Undo what a superuser test may have changed on one of our servers: ``ALTER SYSTEM``
    settings (reset and reloaded) and roles created since ``roles_before`` (dropped, except the
    run's own ``cr_*`` roles). Returns what was undone."""
    import psycopg

    undone: list[str] = []
    with server.connect(autocommit=True) as admin:
        auto = admin.execute(
            "SELECT count(*) FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf'"
        ).fetchone()
        if auto and auto[0]:
            admin.execute("ALTER SYSTEM RESET ALL")
            admin.execute("SELECT pg_reload_conf()")
            undone.append("ALTER SYSTEM settings")
        roles = admin.execute("SELECT rolname FROM pg_roles WHERE NOT starts_with(rolname, 'cr_')")
        for role in sorted({str(row[0]) for row in roles} - roles_before):
            with contextlib.suppress(psycopg.Error):
                admin.execute(f"DROP ROLE {ident(role)}")
                undone.append(f"role {role}")
    return undone
