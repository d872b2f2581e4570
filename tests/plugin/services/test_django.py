"""pytest-django on the plugin's PostgreSQL server: a real small Django project, run at -n 0 and
-n 2, with Django's own TestCase and TransactionTestCase, --reuse-db, migrations run once."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import require

PROJECT = Path(__file__).resolve().parent / "django_project"
#: Where scripts/setup.sh installs pytest-django, apart from the environment (see there).
PYTEST_DJANGO = Path(__file__).resolve().parents[3] / ".venv" / "opt" / "pytest-django"

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("binaries", "runtime_dir")]


@pytest.fixture
def shop(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project copied into a fresh directory, pytest-django importable; returns the log
    the project's migration writes a line to each time it runs."""
    use_pytest_django(monkeypatch)
    shutil.copytree(PROJECT, pytester.path, dirs_exist_ok=True)
    log = pytester.path / "migrations.log"
    monkeypatch.setenv("SHOP_MIGRATION_LOG", str(log))
    return log


def use_pytest_django(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let pytests started in a subprocess load pytest-django (and Django's settings of their
    own ini file only)."""
    require(importlib.util.find_spec("django") is not None, "django (scripts/setup.sh)")
    require((PYTEST_DJANGO / "pytest_django").is_dir(), f"pytest-django in {PYTEST_DJANGO}")
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(PYTEST_DJANGO), path])))
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


EXPECTED = {"passed": 8}


@pytest.mark.parametrize("workers", ["0", "2"])
def test_django_test_classes_on_the_runs_server(
    pytester: pytest.Pytester, shop: Path, workers: str
) -> None:
    result = run(pytester, "-n", workers)
    result.assert_outcomes(**EXPECTED)
    # Migrations ran once for the whole run: into the template under xdist (each worker's test
    # database is a clone of it), straight into the test database without.
    migrated = shop.read_text().split()
    assert len(migrated) == 1, migrated
    assert migrated[0].startswith("cr_")
    assert migrated[0].endswith("_django_default" if workers == "2" else "_master_django_default")


def test_reuse_db_and_create_db(pytester: pytest.Pytester, shop: Path) -> None:
    for options in (["--reuse-db"], ["--reuse-db", "--create-db"]):
        run(pytester, "-n", "2", *options).assert_outcomes(**EXPECTED)
    # The server is the run's: each run migrates its own database, once.
    assert len(shop.read_text().split()) == 2


def test_off_leaves_databases_alone(pytester: pytest.Pytester, shop: Path) -> None:
    ini = pytester.path / "pytest.ini"
    ini.write_text(ini.read_text() + "cleanroom_django = off\n")
    settings = pytester.path / "shop" / "settings.py"  # a server that does not exist
    settings.write_text(
        settings.read_text().replace('"NAME": "shop"', '"NAME": "shop", "PORT": "1"')
    )
    result = run(pytester, "-n", "0", "-k", "CatalogueTests")
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(["*OperationalError*.s.PGSQL.1*"])  # its own port 1
