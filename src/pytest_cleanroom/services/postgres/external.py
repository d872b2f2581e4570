"""The external provider's PostgreSQL: a server the team already runs, given by URL.

Nothing is started; every database the run creates there starts with ``cr_<run>_`` and is dropped
at the end of the run, or by the next run's sweep if this one crashed.
"""

from __future__ import annotations

from ..errors import ServiceConfigError, ServiceStartError
from ..external import redact
from ..registry import Handle, Owner, Registry, Started
from ..settings import ServiceSettings
from .model import PostgresServer


def connect_external(
    settings: ServiceSettings, *, run_id: str, owner: Owner
) -> Started[PostgresServer]:
    """The external provider's starter: check the configured URL and record the run on it."""
    if settings.postgres_settings:
        raise ServiceConfigError(
            "ini cleanroom_postgres_settings cannot be applied to an external server: set "
            "them on that server, or let the plugin start its own (process, docker or podman)"
        )
    url, source = settings.postgres_url, settings.postgres_url_source
    assert url is not None
    server = connect_postgres(url, source, settings.start_timeout)
    settings.check_postgres_major(server.version_num, f"the server of {source}")
    handle: Handle = {"kind": "external-postgres", "url": url, "prefix": f"cr_{run_id}_"}
    registry = Registry(settings.runtime_dir)
    record_id = registry.add(service="postgres", run_id=run_id, owner=owner, handle=handle)
    return Started(server, handle, record_id, registry)


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
