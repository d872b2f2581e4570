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


MARIADB_TESTS = """
import pytest
from django.db import connection, transaction
from django.test import TestCase, TransactionTestCase
from shop.models import Product


class CatalogueTests(TestCase):
    def test_the_migration_seeded_the_catalogue(self):
        assert list(Product.objects.values_list("name", flat=True)) == ["teapot"]

    def test_adding_a_product(self):
        Product.objects.create(name="kettle")
        assert Product.objects.count() == 2

    def test_the_added_product_is_gone(self):
        assert not Product.objects.filter(name="kettle").exists()


class CommitTests(TransactionTestCase):
    serialized_rollback = True

    def test_a_commit(self):
        with transaction.atomic():
            Product.objects.create(name="mug")
        assert Product.objects.filter(name="mug").exists()

    def test_the_commit_is_gone(self):
        assert not Product.objects.filter(name="mug").exists()


@pytest.mark.django_db
def test_on_the_runs_mariadb(mysql_server):
    assert connection.vendor == "mysql"
    assert connection.settings_dict["PORT"] == str(mysql_server.port)
    with connection.cursor() as cursor:
        cursor.execute("SELECT DATABASE(), VERSION()")
        name, version = cursor.fetchone()
    assert name == connection.settings_dict["NAME"]
    assert name.startswith("cr_")
    assert "MariaDB" in version


@pytest.mark.django_db(transaction=True)
def test_the_mysql_fixture_side_by_side(mysql):
    Product.objects.create(name="cup")
    with mysql.connect() as conn, conn.cursor() as cursor:  # a database of its own
        cursor.execute("SHOW TABLES")
        assert cursor.fetchall() == ()
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_django_on_the_runs_mariadb(pytester: pytest.Pytester, shop: Path, workers: str) -> None:
    from pytest_cleanroom.services.binaries import find_mysql

    require(find_mysql() is not None, "MariaDB's server (apt-get install mariadb-server)")
    settings = pytester.path / "shop" / "settings.py"
    mysql = settings.read_text().replace(
        "django.db.backends.postgresql", "django.db.backends.mysql"
    )
    # Django's MySQL backend imports MySQLdb; PyMySQL stands in for mysqlclient (no compiler).
    settings.write_text("import pymysql\n\npymysql.install_as_MySQLdb()\n" + mysql)
    (pytester.path / "test_shop.py").write_text(MARIADB_TESTS)
    result = run(pytester, "-n", workers)
    result.assert_outcomes(passed=7)
    # No template on MariaDB: each worker that ran a database test migrated its own database.
    migrated = shop.read_text().split()
    assert 1 <= len(migrated) <= max(1, int(workers)), migrated
    assert all(name.startswith("cr_") and name.endswith("_django_default") for name in migrated)
