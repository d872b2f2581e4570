"""pytest-django's test databases on the run's PostgreSQL or MariaDB server (docs/services.md,
"Django").

Before pytest-django's ``django_db_setup`` creates the test databases, every ``DATABASES`` entry
with a PostgreSQL or MySQL engine is pointed at the run's server of that kind, under a test
database name of the run (``cr_<run>_<worker>_django_<alias>``), so that the run's clean-up and
the crash sweep find it. On PostgreSQL under xdist, the migrations run once per run into a
template database that each worker's test database is cloned from; with one worker (and on
MariaDB, which has no templates) they run straight into the test database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .postgres.roles import drop_database, ident
from .postgres.template import server_key

if TYPE_CHECKING:
    from .hub import ServiceHub
    from .mysql import MysqlServer
    from .postgres import PostgresServer

POSTGRES_ENGINES = frozenset(
    {"django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis"}
)
MYSQL_ENGINES = frozenset({"django.db.backends.mysql", "django.contrib.gis.db.backends.mysql"})


def postgres_aliases() -> list[str]:
    """The ``DATABASES`` aliases served by PostgreSQL (test mirrors excluded: they follow)."""
    return _aliases(POSTGRES_ENGINES)


def _aliases(engines: frozenset[str]) -> list[str]:
    from django.conf import settings

    return [
        alias
        for alias, db in settings.DATABASES.items()
        if db.get("ENGINE") in engines and not (db.get("TEST") or {}).get("MIRROR")
    ]


def redirect_databases(
    hub: ServiceHub, unblock: Callable[[], contextlib.AbstractContextManager[Any]], migrate: bool
) -> list[str]:
    """Point each PostgreSQL alias at the run's server; returns the aliases redirected.

    ``unblock`` is pytest-django's ``django_db_blocker.unblock`` (building the template needs the
    database); ``migrate`` is false under ``--nomigrations`` (nothing worth sharing then).
    """
    from django.db import connections

    aliases = postgres_aliases()
    redirected = _redirect_mysql(hub)
    if not aliases:
        return redirected
    server: PostgresServer = hub.server("postgres")
    run = hub.run
    for alias in aliases:
        connections[alias].close()
        db = connections[alias].settings_dict  # the very dict of settings.DATABASES[alias]
        db.update(HOST=server.host, PORT=str(server.port), USER=server.user)
        db["PASSWORD"] = server.password
        test = db.setdefault("TEST", {})
        test["NAME"] = f"{run.db_prefix}{run.worker_id}_django_{alias}"
        if run.worker_count > 1 and migrate:
            test["TEMPLATE"] = _template(hub, server, alias, unblock)
    return aliases + redirected


def _redirect_mysql(hub: ServiceHub) -> list[str]:
    """Point each MySQL alias at the run's MariaDB server, as its administrator (Django creates
    and drops the test database itself)."""
    from django.db import connections

    aliases = _aliases(MYSQL_ENGINES)
    if not aliases:
        return []

    server: MysqlServer = hub.server("mysql")
    run = hub.run
    for alias in aliases:
        connections[alias].close()
        db = connections[alias].settings_dict
        db.update(HOST=server.host, PORT=str(server.port), USER=server.user)
        db["PASSWORD"] = server.password or ""
        db.setdefault("TEST", {})["NAME"] = f"{run.db_prefix}{run.worker_id}_django_{alias}"
    return aliases


def _template(
    hub: ServiceHub,
    server: PostgresServer,
    alias: str,
    unblock: Callable[[], contextlib.AbstractContextManager[Any]],
) -> str:
    """The run's migrated template for ``alias``, built by the first worker that needs it."""
    name = f"{hub.run.db_prefix}django_{alias}"

    def produce() -> dict[str, Any]:
        with unblock():
            _build(server, alias, name)
        return {"name": name}

    return str(hub.once(server_key(f"django-{alias}", hub.settings), produce)["name"])


def _build(server: PostgresServer, alias: str, name: str) -> None:
    """Create ``name`` afresh (a dead builder may have left half of it) and migrate into it."""
    from django.core.management import call_command

    _drop(server, name)
    with server.connect(autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {ident(name)}")
    try:
        with _database_name(alias, name):
            call_command("migrate", database=alias, interactive=False, verbosity=0, run_syncdb=True)
    except BaseException:
        _drop(server, name)
        raise


def _drop(server: PostgresServer, name: str) -> None:
    with server.connect(autocommit=True) as admin:
        for statement in drop_database(name, server.version_num):
            admin.execute(statement)


@contextlib.contextmanager
def _database_name(alias: str, name: str) -> Iterator[None]:
    """Let ``alias`` use database ``name`` meanwhile; closed afterwards (a template must have
    no session left for ``CREATE DATABASE ... TEMPLATE`` to clone it)."""
    from django.db import connections

    connection = connections[alias]
    before = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = name
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict["NAME"] = before
