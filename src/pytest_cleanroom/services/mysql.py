"""MariaDB for the ``mysql`` fixture: the server, a database and a user per test.

Each test gets ``CREATE DATABASE cr_<run>_<worker>_<n>`` and a user of the same name with every
right on that database and none on the server (no ``SUPER``, ``FILE``, ``PROCESS``, ``RELOAD``,
``SHUTDOWN``, ``CREATE USER``, no other database), so ``SET GLOBAL``, ``CREATE USER`` or reading
another test's data are refused. Its sessions are killed and both are dropped after the test.
PyMySQL (pure Python) is imported only when a connection is asked for.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from .errors import ServiceStartError
from .model import LogSource, _Server, _TestHandle
from .server_log import mysql_lines

if TYPE_CHECKING:
    from pymysql.connections import Connection

#: Connections one test's user may hold at once, so that one test cannot exhaust the server.
MAX_USER_CONNECTIONS = 64

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
        :mod:`.server_log`)."""
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
        ``MYSQL_DATABASE`` and ``DATABASE_URL``."""
        env = {
            "MYSQL_USER": self.user,
            "MYSQL_PWD": self._password,
            "MYSQL_DATABASE": self.dbname,
            "MYSQL_TCP_PORT": str(self.port),
            "DATABASE_URL": self.url_for("mysql", via_socket=True),
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


class MysqlDatabaseFactory:
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

    def create(self) -> MysqlDatabase:
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

    def drop(self, database: MysqlDatabase) -> None:
        """End the test's sessions, undo what its administrator connection changed on the
        server, drop its database and its user."""
        database.close_connections()
        if database.state_before is not None:
            reset_server_state(self._connection(), database.state_before)
        self._drop(database.dbname)

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
