"""The suite's template database: loaded once per run, cloned for every test.

Entries (ini ``cleanroom_postgres_template``, one a line) run in order: SQL files or glob patterns
(relative to the ini file's directory) and ``module:function`` callables that receive a
:class:`~pytest_cleanroom.services.model.PostgresDatabase` for the template.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import TemplateError
from ..protocol import keyed
from . import roles as pg_roles
from .model import PostgresDatabase, PostgresServer
from .roles import ident

if TYPE_CHECKING:
    from ..hub import ServiceHub
    from ..settings import ServiceSettings

CALLABLE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
INI_KEY = "cleanroom_postgres_template"


def _resolve_callable(entry: str, base_dir: Path) -> Callable[[PostgresDatabase], Any]:
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name) or str(base_dir) in sys.path:
            raise TemplateError(f"ini {INI_KEY}: cannot import {module_name!r}: {exc}") from None
        sys.path.insert(0, str(base_dir))
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc2:
            raise TemplateError(f"ini {INI_KEY}: cannot import {module_name!r}: {exc2}") from None
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise TemplateError(f"ini {INI_KEY}: {module_name!r} has no attribute {attr!r}")
    if not callable(target):
        raise TemplateError(f"ini {INI_KEY}: {entry!r} is not callable")
    return target  # type: ignore[no-any-return]


def expand(entries: tuple[str, ...], base_dir: Path) -> list[tuple[str, Path | str]]:
    """Each entry as ("sql", path) or ("callable", "module:function"); errors name the entry."""
    steps: list[tuple[str, Path | str]] = []
    for entry in entries:
        if CALLABLE.match(entry) and not (base_dir / entry).exists():
            steps.append(("callable", entry))
            continue
        pattern = entry if Path(entry).is_absolute() else str(base_dir / entry)
        if glob.has_magic(pattern):
            matches = sorted(Path(p) for p in glob.glob(pattern))
            if not matches:
                raise TemplateError(f"ini {INI_KEY}: no file matches {entry!r} (in {base_dir})")
            steps.extend(("sql", m) for m in matches)
        elif Path(pattern).is_file():
            steps.append(("sql", Path(pattern)))
        else:
            raise TemplateError(
                f"ini {INI_KEY}: {entry!r} is neither an SQL file (looked for {pattern}) "
                "nor a module:function callable"
            )
    return steps


def build(
    server: PostgresServer,
    name: str,
    entries: tuple[str, ...],
    base_dir: Path,
    extensions: tuple[str, ...] = (),
) -> None:
    """Create the template database ``name`` and load it; on failure it is dropped again.

    A template left half-built by a builder that died (a SIGKILLed worker cannot clean up) is
    dropped first and built again. When the server manages roles, the template is loaded by a
    role of the same name, a superuser only while loading: its objects then belong to that role,
    which every test's role is a member of (so a test may alter and drop them in its own copy),
    and it loses every right but ownership once the template is done. ``extensions`` are created
    first (``CREATE EXTENSION``), by that role while it is a superuser.
    """
    import psycopg

    steps = expand(entries, base_dir)  # bad entries fail before anything is created
    with server.connect(autocommit=True) as admin:
        rebuilt = _drop_leftover(admin, server, name)
        db = _create(admin, server, name)
        try:
            _create_extensions(db, extensions)
            _load(db, steps, base_dir)
            db.close_connections()
            _seal(admin, server, name)
        except BaseException as exc:
            db.close_connections()
            with contextlib.suppress(psycopg.Error):
                for statement in _drop_statements(server, name):
                    admin.execute(statement)
            if rebuilt and isinstance(exc, TemplateError):
                raise TemplateError(f"{exc} (while rebuilding {rebuilt})") from exc
            raise


def _drop_statements(server: PostgresServer, name: str) -> list[str]:
    if server.manages_roles:
        return pg_roles.drop_owned_database(name, server.version_num)
    return pg_roles.drop_database(name, server.version_num)


def _drop_leftover(admin: Any, server: PostgresServer, name: str) -> str:
    """Drop what a builder that died left of the template; says what it dropped ("" if none)."""
    found = admin.execute(
        "SELECT (SELECT count(*) FROM pg_database WHERE datname = %s)"
        " + (SELECT count(*) FROM pg_roles WHERE rolname = %s)",
        (name, name),
    ).fetchone()
    if not found or not found[0]:
        return ""
    for statement in _drop_statements(server, name):
        admin.execute(statement)
    return f"the template {name} that a worker left half-built when it died"


def _create(admin: Any, server: PostgresServer, name: str) -> PostgresDatabase:
    db = ident(name)
    if not server.manages_roles:
        admin.execute(f"CREATE DATABASE {db} TEMPLATE template0")
        return PostgresDatabase(server, name)
    password = pg_roles.new_password()
    verifier = pg_roles.literal(pg_roles.scram_verifier(password))
    admin.execute(f"CREATE ROLE {db} LOGIN SUPERUSER PASSWORD {verifier}")
    admin.execute(f"CREATE DATABASE {db} OWNER {db} TEMPLATE template0")
    return PostgresDatabase(server, name, role=name, role_password=password)


def _create_extensions(db: PostgresDatabase, extensions: tuple[str, ...]) -> None:
    import psycopg

    for extension in extensions:
        try:
            with db.connect(autocommit=True) as conn:
                conn.execute(f"CREATE EXTENSION IF NOT EXISTS {ident(extension)}".encode())
        except psycopg.Error as exc:
            message = str(exc).strip().splitlines()[0]
            raise TemplateError(f"extension {extension!r}: {message}") from None


def _load(db: PostgresDatabase, steps: list[tuple[str, Path | str]], base_dir: Path) -> None:
    import psycopg

    for kind, what in steps:
        if kind == "sql":
            path = Path(what)
            try:
                text = path.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise TemplateError(f"ini {INI_KEY}: cannot read {path}: {exc}") from None
            try:
                with db.connect() as conn:
                    conn.execute(text.encode())  # bytes: no placeholder parsing
            except psycopg.Error as exc:
                raise TemplateError(_sql_error(path, text, exc)) from None
        else:
            function = _resolve_callable(str(what), base_dir)
            try:
                function(db)
            except TemplateError:
                raise
            except Exception as exc:
                raise TemplateError(
                    f"ini {INI_KEY}: {what} raised {type(exc).__name__}: {exc}"
                ) from exc


def _seal(admin: Any, server: PostgresServer, name: str) -> None:
    """No more connections to the template; its role keeps nothing but ownership."""
    db = ident(name)
    if server.manages_roles:
        admin.execute(f"ALTER ROLE {db} NOSUPERUSER NOLOGIN")
        admin.execute(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
    if server.version_num >= 130000:
        admin.execute(f"ALTER DATABASE {db} ALLOW_CONNECTIONS false")
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    )


def _sql_error(path: Path, text: str, exc: Any) -> str:
    diag = getattr(exc, "diag", None)
    message = (diag.message_primary if diag else None) or str(exc).strip()
    where = ""
    position = getattr(diag, "statement_position", None) if diag else None
    if position:
        line = text.count("\n", 0, int(position) - 1) + 1
        where = f", line {line}"
    return f"ini {INI_KEY}: {path}{where}: {message}"


def server_key(what: str, settings: ServiceSettings, extensions: tuple[str, ...] = ()) -> str:
    """The run's state key of a PostgreSQL server (or its template): server settings, major
    version and binaries are part of a server's identity, so two configurations get two servers
    (and a template with other extensions is another template)."""
    identity = settings.postgres_identity
    return keyed(what, (identity, extensions) if extensions else identity)


def run_template(
    hub: ServiceHub, settings: ServiceSettings | None = None, extensions: tuple[str, ...] = ()
) -> str:
    """Name of the run's template database, loaded once per run (per server and set of
    ``extensions``, created in it first).

    Without template entries and extensions every test starts from PostgreSQL's pristine
    ``template0``: the same empty database, one clone less on first use. When the server
    manages roles, the template's objects belong to a role of the same name (see :func:`build`).
    """
    s = settings or hub.settings
    server: PostgresServer = hub.server("postgres", s)
    if not s.postgres_template and not extensions:
        return "template0"
    name = keyed(hub.run.template_name, extensions, "_")

    def produce() -> dict[str, Any]:
        build(server, name, s.postgres_template, s.base_dir, extensions)
        return {"name": name}

    return str(hub.once(server_key("postgres-template", s, extensions), produce)["name"])
