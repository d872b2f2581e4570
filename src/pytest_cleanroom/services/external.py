"""The external provider: servers the team already runs, given by URL. Nothing is started.

The URL's password never appears in an error message.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .errors import ServiceConfigError, ServiceStartError
from .model import PostgresServer, RedisServer
from .registry import Handle

RUN_DB_PREFIX = "cr_"


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def connect_postgres(url: str, source: str, timeout: float) -> PostgresServer:
    """Check that ``url`` reaches a server and that its user may create databases."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ServiceConfigError(
            f"{source} is not a valid PostgreSQL URL ({redact(url)}): {exc}"
        ) from None
    host = str(params.pop("host", None) or "127.0.0.1")
    port = int(str(params.pop("port", None) or 5432))
    user = str(params.pop("user", None) or "postgres")
    password = params.pop("password", None)
    dbname = str(params.pop("dbname", None) or "postgres")
    options = {str(k): str(v) for k, v in params.items()}
    connect_timeout = max(1, int(min(timeout, 30)))
    try:
        with psycopg.connect(url, connect_timeout=connect_timeout, autocommit=True) as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), rolcreatedb OR rolsuper, rolsuper "
                "FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            version_num = conn.info.server_version
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        hint = "check the server is running and the URL's host and port"
        if "password" in reason or "authentication" in reason:
            hint = "check the user name and the password in the URL (it is not shown here)"
        raise ServiceStartError(
            f"cannot connect to the external PostgreSQL from {source} ({redact(url)}): "
            f"{reason}; {hint}"
        ) from None
    if row is None or not row[1]:
        raise ServiceStartError(
            f"the user {user!r} of {source} ({redact(url)}) may not create databases: "
            f"run ALTER ROLE {user} CREATEDB, or use a user that may"
        )
    socket_dir = host if host.startswith("/") else None
    return PostgresServer(
        provider="external",
        host=host,
        port=port,
        user=user,
        password=str(password) if password is not None else None,
        unix_socket_dir=socket_dir,
        version=str(row[0]).split()[0],
        version_num=version_num,
        admin_dbname=dbname,
        options=options,
        manages_roles=bool(row[2]),
    )


def drop_run_databases(handle: Handle) -> str:
    """Drop every database a run created on an external server (teardown and crash sweep)."""
    import psycopg
    from psycopg import sql

    url = handle["url"]
    prefix = handle["prefix"]
    try:
        with psycopg.connect(url, connect_timeout=10, autocommit=True) as conn:
            names = [
                str(r[0])
                for r in conn.execute(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (prefix,)
                )
            ]
            for name in names:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
    except psycopg.OperationalError as exc:
        raise ServiceStartError(f"cannot reach {redact(url)} to drop {prefix}*: {exc}") from None
    return f"dropped {len(names)} database(s) {prefix}* on {redact(url)}"


def connect_redis(url: str, source: str, timeout: float) -> RedisServer:
    """Check that ``url`` reaches a Redis server; its database index is the first one we use."""
    import redis as redis_py

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    db = 0
    path_db = parts.path.strip("/")
    if path_db:
        if not path_db.isdigit():
            raise ServiceConfigError(f"{source}: {path_db!r} is not a database number")
        db = int(path_db)
    elif "db" in query:
        db = int(query["db"][0])
    client = redis_py.Redis.from_url(
        url, socket_timeout=min(timeout, 30), socket_connect_timeout=min(timeout, 30)
    )
    try:
        info: dict[str, Any] = client.info("server")
        try:
            databases = int(str(client.config_get("databases").get("databases", 16)))
        except redis_py.ResponseError:  # CONFIG may be disabled on managed servers
            databases = 16
    except redis_py.AuthenticationError as exc:
        raise ServiceStartError(
            f"the external Redis from {source} ({redact(url)}) refused the credentials: {exc}; "
            "check the password in the URL (it is not shown here)"
        ) from None
    except redis_py.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise ServiceStartError(
                f"the external Redis from {source} ({redact(url)}) refused the credentials: {exc}; "
                "check the password in the URL (it is not shown here)"
            ) from None
        raise ServiceStartError(f"external Redis from {source} ({redact(url)}): {exc}") from None
    except redis_py.ConnectionError as exc:
        raise ServiceStartError(
            f"cannot connect to the external Redis from {source} ({redact(url)}): {exc}; "
            "check the server is running and the URL's host and port"
        ) from None
    finally:
        client.close()
    kwargs = client.connection_pool.connection_kwargs
    unix = kwargs.get("path")
    return RedisServer(
        provider="external",
        host=str(kwargs.get("host", "localhost")) if not unix else "localhost",
        port=int(kwargs.get("port", 6379)) if not unix else 0,
        password=kwargs.get("password"),
        unix_socket=str(unix) if unix else None,
        version=str(info.get("redis_version", "?")),
        databases=databases,
        db_base=db,
        username=kwargs.get("username"),
        tls=parts.scheme == "rediss",
    )
