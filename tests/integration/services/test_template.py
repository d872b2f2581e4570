"""Template loading against a real server: entries, their order, and errors that name the entry."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pytest_cleanroom.services import cleanup
from pytest_cleanroom.services.binaries import find_postgres
from pytest_cleanroom.services.errors import TemplateError
from pytest_cleanroom.services.postgres import PostgresServer, template
from pytest_cleanroom.services.postgres import process as pg_process
from pytest_cleanroom.services.registry import Owner
from pytest_cleanroom.services.settings import ServiceSettings
from tests.conftest import require

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    require(find_postgres() is not None, "PostgreSQL server binaries (apt-get install postgresql)")
    runtime = Path(tempfile.mkdtemp(prefix="crtpl-", dir="/tmp"))
    started = pg_process.start_postgres(
        ServiceSettings(runtime_dir=runtime, data_dir=runtime), run_id="tpl", owner=Owner.current()
    )
    yield started.server
    cleanup.stop(started.handle)
    started.registry.remove(started.record_id)
    shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "b.sql").write_text("INSERT INTO steps VALUES ('b.sql');\n")
    (tmp_path / "sql" / "a.sql").write_text("CREATE TABLE steps (name text);\n")
    module = f"seed_{tmp_path.name}"
    (tmp_path / f"{module}.py").write_text(
        "def load(db):\n"
        "    with db.connect() as conn:\n"
        "        conn.execute(\"INSERT INTO steps VALUES ('callable')\")\n"
        "def explode(db):\n"
        "    raise ValueError('bad seed data')\n"
        "not_callable = 3\n"
    )
    monkeypatch.setattr(sys, "path", list(sys.path))  # the loader may add the project to it
    return tmp_path


def databases(server: PostgresServer) -> set[str]:
    with server.connect() as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def test_entries_run_in_order_and_the_template_refuses_connections(
    server: PostgresServer, project: Path
) -> None:
    module = f"seed_{project.name}"
    template.build(server, "cr_t1_template", ("sql/*.sql", f"{module}:load"), project)
    with server.connect(autocommit=True) as admin:
        admin.execute("CREATE DATABASE cr_t1_copy TEMPLATE cr_t1_template")
    with server.connect("cr_t1_copy") as conn:
        assert conn.execute("SELECT name FROM steps").fetchall() == [("b.sql",), ("callable",)]
    with pytest.raises(psycopg.OperationalError, match="not currently accepting connections"):
        server.connect("cr_t1_template")
    with server.connect(autocommit=True) as admin:
        admin.execute("DROP DATABASE cr_t1_copy")
        admin.execute("DROP DATABASE cr_t1_template")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("missing.sql", r"'missing.sql' is neither an SQL file \(looked for .*missing.sql\)"),
        ("nothing/*.sql", r"no file matches 'nothing/\*.sql'"),
        ("no_such_module_xyz:load", r"cannot import 'no_such_module_xyz'"),
        ("MODULE:nope", r"'seed_\w+' has no attribute 'nope'"),
        ("MODULE:not_callable", r"'seed_\w+:not_callable' is not callable"),
        ("MODULE:explode", r"seed_\w+:explode raised ValueError: bad seed data"),
        ("sql/b.sql", r".*/sql/b.sql, line 1: relation \"steps\" does not exist"),
    ],
)
def test_a_bad_entry_is_named_and_leaves_no_template(
    server: PostgresServer, project: Path, entry: str, expected: str
) -> None:
    entry = entry.replace("MODULE", f"seed_{project.name}")
    with pytest.raises(TemplateError, match="ini cleanroom_postgres_template: " + expected):
        template.build(server, "cr_t2_template", (entry,), project)
    assert "cr_t2_template" not in databases(server)
