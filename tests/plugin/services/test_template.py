"""The suite's template: loaded once per run from SQL files and callables, cloned per test."""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)
pytestmark = pytest.mark.usefixtures("binaries", "runtime_dir")

SEED = """
def load(db):
    with db.connect() as conn:
        conn.execute("INSERT INTO customers (name) VALUES ('ada'), ('grace')")
    with open("loads.log", "a") as fh:
        fh.write(db.dbname + "\\n")
"""

TESTS = """
import pytest

@pytest.mark.parametrize("n", range(6))
def test_seeded(postgres, n):
    with postgres.connect() as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM customers ORDER BY name")]
        assert names == ["ada", "grace"]
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (0,)
        # Every test may scribble over its copy: the next one starts from the template again.
        conn.execute("DELETE FROM customers")
        conn.execute("DROP TABLE orders")
"""


def write_schema(pytester: pytest.Pytester) -> None:
    pytester.mkdir("schema")
    (pytester.path / "schema" / "001_customers.sql").write_text(
        "CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);\n"
    )
    (pytester.path / "schema" / "002_orders.sql").write_text(
        "-- percent signs are not placeholders: 100%\n"
        "CREATE TABLE orders (id serial, customer int REFERENCES customers (id));\n"
    )
    pytester.makepyfile(seed=SEED)
    pytester.makeini(
        """
        [pytest]
        cleanroom_postgres_template =
            schema/*.sql
            seed:load
        """
    )


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_template_is_loaded_once_per_run_and_cloned_for_every_test(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    write_schema(pytester)
    pytester.makepyfile(test_seeded=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *workers)
    result.assert_outcomes(passed=6)
    loads = (pytester.path / "loads.log").read_text().splitlines()
    assert len(loads) == 1, loads  # once for the whole run, whatever the number of workers
    assert loads[0].startswith("cr_")
    assert loads[0].endswith("_template")


def test_an_sql_error_names_the_file_and_line_and_spares_other_tests(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".sql", broken="CREATE TABLE a (x int);\n\nCREATE TABLE b (x nosuchtype);\n")
    pytester.makeini("[pytest]\ncleanroom_postgres_template = broken.sql\n")
    pytester.makepyfile(
        """
        def test_one(postgres):
            pass

        def test_two(postgres):
            pass

        def test_without_database(redis):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*TemplateError: ini cleanroom_postgres_template: *broken.sql, line 3: "
            'type "nosuchtype" does not exist'
        ]
    )
    assert result.stdout.str().count("TemplateError") >= 2


DYING_SEED = """
import os, signal
from pathlib import Path

def load(db):
    with db.connect() as conn:
        conn.execute("INSERT INTO customers (name) VALUES ('ada'), ('grace')")
    first = Path("first-builder")
    if not first.exists():  # the first builder dies half-way: no clean-up can run
        first.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    with open("loads.log", "a") as fh:
        fh.write(db.dbname + "\\n")
"""


def test_a_worker_killed_while_building_the_template_does_not_poison_the_run(
    pytester: pytest.Pytester,
) -> None:
    write_schema(pytester)
    pytester.makepyfile(seed=DYING_SEED, test_seeded=TESTS)
    pytester.makeini("[pytest]\ncleanroom_postgres_template =\n    schema/*.sql\n    seed:load\n")
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    # The test whose set-up was building the template went down with its worker (xdist reports
    # it as crashed); every other test got a template built again from scratch.
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 1, result.stdout.str()
    assert outcomes.get("passed") == 5, result.stdout.str()
    assert "already exists" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*crashed*"])
    assert (pytester.path / "first-builder").exists()
    assert len((pytester.path / "loads.log").read_text().splitlines()) == 1
