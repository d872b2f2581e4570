"""Per-test isolation on MariaDB: a database and a user per test.

Each test gets ``CREATE DATABASE cr_<run>_<worker>_<n>`` and a user of the same name with every
right on that database and none on the server (no ``SUPER``, ``FILE``, ``PROCESS``, ``RELOAD``,
``SHUTDOWN``, ``CREATE USER``, no other database), so ``SET GLOBAL``, ``CREATE USER`` or reading
another test's data are refused. Its sessions are killed and both are dropped after the test.
"""

from __future__ import annotations

import itertools
import secrets
from typing import TYPE_CHECKING, Any

from ..errors import ServiceStartError
from ..protocol import Isolation
from .model import MysqlDatabase, MysqlServer, quote_name, quote_text, server_state

if TYPE_CHECKING:
    from pymysql.connections import Connection

#: Connections one test's user may hold at once, so that one test cannot exhaust the server.
MAX_USER_CONNECTIONS = 64


class MysqlDatabaseFactory(Isolation[MysqlDatabase]):
    """Creates ``<prefix><n>`` (a database and its user) for each test and drops both after it,
    one round trip each on one administrator connection."""

    def __init__(self, server: MysqlServer, prefix: str) -> None:
        self.server = server
        self.prefix = prefix
        self._counter = itertools.count(1)
        self._admin: Connection[Any] | None = None
        self._open: set[str] = set()

    def _connection(self) -> Connection[Any]:
        from pymysql.constants import CLIENT

        if self._admin is None or not self._admin.open:
            try:
                self._admin = self.server.connect(
                    autocommit=True, client_flag=CLIENT.MULTI_STATEMENTS
                )
            except Exception as exc:
                raise ServiceStartError(f"cannot connect to the MariaDB server: {exc}") from None
        return self._admin

    def _run(self, statements: list[str]) -> None:
        with self._connection().cursor() as cursor:
            cursor.execute(";\n".join(statements))
            while cursor.nextset():
                pass

    def isolate(self) -> MysqlDatabase:
        """A new database and user for the calling test."""
        name = f"{self.prefix}{next(self._counter)}"
        password = secrets.token_urlsafe(18)
        user = f"{quote_text(name)}@'%'"
        self._open.add(name)
        try:
            self._run(
                [
                    f"CREATE DATABASE {quote_name(name)}",
                    f"CREATE USER {user} IDENTIFIED BY {quote_text(password)} "
                    f"WITH MAX_USER_CONNECTIONS {MAX_USER_CONNECTIONS}",
                    f"GRANT ALL PRIVILEGES ON {quote_name(name)}.* TO {user}",
                ]
            )
        except Exception as exc:
            self._drop(name)
            raise ServiceStartError(f"cannot create the test database {name}: {exc}") from None
        return MysqlDatabase(self.server, name, user=name, password=password)

    def reset(self, handle: MysqlDatabase) -> None:
        """End the test's sessions, undo what its administrator connection changed on the
        server, drop its database and its user."""
        handle.close_connections()
        if handle.state_before is not None:
            reset_server_state(self._connection(), handle.state_before)
        self._drop(handle.dbname)

    def _drop(self, name: str) -> None:
        conn = self._connection()
        with conn.cursor() as cursor:
            cursor.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (name,))
            sessions = [int(row[0]) for row in cursor.fetchall()]
        for session in sessions:
            _kill(conn, session)
        self._run(
            [
                f"DROP DATABASE IF EXISTS {quote_name(name)}",
                f"DROP USER IF EXISTS {quote_text(name)}@'%'",
            ]
        )
        self._open.discard(name)

    def close(self) -> None:
        """Drop whatever is left, close the administrator connection."""
        for name in sorted(self._open):
            self._drop(name)
        if self._admin is not None:
            self._admin.close()
            self._admin = None


UNKNOWN_THREAD = 1094


def _kill(conn: Connection[Any], session: int) -> None:
    """End ``session``; one that ended meanwhile (a client that just closed) is fine."""
    import pymysql

    try:
        with conn.cursor() as cursor:
            cursor.execute(f"KILL {int(session)}")
    except pymysql.err.OperationalError as exc:
        if exc.args[0] != UNKNOWN_THREAD:
            raise


def reset_server_state(
    conn: Connection[Any], before: tuple[frozenset[str], dict[str, str]]
) -> list[str]:
    """Drop users created and put back global variables changed since ``before`` (the run's own
    ``cr_`` users aside); returns what was undone."""
    users_before, variables_before = before
    users, variables = server_state(conn)
    undone: list[str] = []
    with conn.cursor() as cursor:
        for user in sorted(users - users_before):
            name, _, host = user.rpartition("@")
            if name.startswith("cr_"):
                continue
            cursor.execute(f"DROP USER IF EXISTS {quote_text(name)}@{quote_text(host)}")
            undone.append(f"user {user}")
        for key, value in variables_before.items():
            if variables.get(key) != value:
                number = value.lstrip("-").isdigit()
                try:
                    cursor.execute(
                        f"SET GLOBAL {quote_name(key)} = %s", (int(value) if number else value,)
                    )
                    undone.append(f"SET GLOBAL {key}")
                except Exception:  # read-only or not settable from its text form
                    continue
    return undone
