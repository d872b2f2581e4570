"""The external provider's MariaDB: a server the team already runs, given by a ``mysql://`` URL.

Nothing is started. The URL's user must be allowed to create users and grant (each test gets a
database and a user of its own, as on the other providers); every database and user the run
creates starts with ``cr_<run>_`` and is dropped at the end of the run, or by the next run's sweep
if this one crashed. The URL's password never appears in an error message.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import ServiceConfigError, ServiceStartError
from ..external import redact
from ..registry import Handle, Owner, Registry, Started
from ..settings import ServiceSettings
from .model import MysqlServer, quote_name, quote_text


def server_from_url(url: str, source: str) -> MysqlServer:
    """The server a ``mysql://user:password@host:port/?unix_socket=...`` URL names (unchecked)."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    try:
        port = parts.port or 3306
    except ValueError:
        raise ServiceConfigError(f"{source}: bad port in {redact(url)}") from None
    return MysqlServer(
        provider="external",
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username or "root"),
        password=unquote(parts.password) if parts.password is not None else None,
        unix_socket=query["unix_socket"][0] if "unix_socket" in query else None,
        version="?",
    )


def connect_mysql(settings: ServiceSettings, *, run_id: str, owner: Owner) -> Started[MysqlServer]:
    """Check that the configured URL reaches a MariaDB server whose user may create users and
    databases, and record the run on it for the crash sweep."""
    url, source = settings.mysql_url, settings.mysql_url_source
    if not url:
        raise ServiceConfigError("no MariaDB URL configured: set CLEANROOM_MYSQL_URL")
    server = server_from_url(url, source)
    try:
        timeout = max(1, int(min(settings.start_timeout, 30)))
        with server.connect(connect_timeout=timeout) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            version = str((cursor.fetchone() or ("?",))[0]).split("-")[0]
            cursor.execute("SHOW GRANTS")
            grants = " ".join(str(row[0]) for row in cursor.fetchall()).upper()
    except Exception as exc:
        reason = str(exc).strip() or type(exc).__name__
        hint = "check the server is running and the URL's host and port"
        if "Access denied" in reason:
            hint = "check the user name and the password in the URL (it is not shown here)"
        raise ServiceStartError(
            f"cannot connect to the external MariaDB from {source} ({redact(url)}): {reason}; "
            f"{hint}"
        ) from None
    everything = "ALL PRIVILEGES ON *.*" in grants
    if not ((everything or "CREATE USER" in grants) and "GRANT OPTION" in grants):
        raise ServiceStartError(
            f"the user {server.user!r} of {source} ({redact(url)}) may not create users and "
            f"grant rights: run GRANT ALL PRIVILEGES ON *.* TO {server.user} WITH GRANT OPTION, "
            "or use a user that may"
        )
    handle: Handle = {"kind": "external-mysql", "url": url, "prefix": f"cr_{run_id}_"}
    registry = Registry(settings.runtime_dir)
    record_id = registry.add(service="mysql", run_id=run_id, owner=owner, handle=handle)
    server = replace(server, version=version)
    return Started(server, handle, record_id, registry)


def drop_run_objects(handle: Handle) -> str:
    """Drop every database and user a run created on an external server (teardown and sweep)."""
    url, prefix = handle["url"], handle["prefix"]
    server = server_from_url(url, "the leftovers registry")
    pattern = prefix.replace("_", "\\_") + "%"
    try:
        with server.connect(connect_timeout=10, autocommit=True) as conn, conn.cursor() as cursor:
            cursor.execute(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                (pattern,),
            )
            databases = [str(row[0]) for row in cursor.fetchall()]
            cursor.execute(
                "SELECT User, Host FROM mysql.global_priv WHERE User LIKE %s", (pattern,)
            )
            users: list[tuple[Any, Any]] = list(cursor.fetchall())
            for database in databases:
                cursor.execute(f"DROP DATABASE IF EXISTS {quote_name(database)}")
            for user, host in users:
                cursor.execute(
                    f"DROP USER IF EXISTS {quote_text(str(user))}@{quote_text(str(host))}"
                )
    except Exception as exc:
        raise ServiceStartError(f"cannot reach {redact(url)} to drop {prefix}*: {exc}") from None
    return (
        f"dropped {len(databases)} database(s) and {len(users)} user(s) {prefix}* on {redact(url)}"
    )
