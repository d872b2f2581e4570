"""Scenarios that name services: postgres, redis and mysql (every registered kind) start as for
their fixtures and the steps reach them through the sockets bound into the sandbox."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import require, require_binary

pytestmark = pytest.mark.integration

FILE = """\
[scenario]
name = "db"
services = ["postgres", "redis"]

[[steps]]
name = "schema"
run = "psql -v ON_ERROR_STOP=1 -qc 'create table orders (id int); insert into orders values (7)'"

[[steps]]
name = "query"
run = "psql -Atc 'select id from orders'"
expect_stdout = "^7$"

[[steps]]
name = "cache"
run = 'cli="redis-cli -s $REDIS_SOCKET -n $REDIS_DB"; $cli set k v && $cli get k'
expect_stdout = "^v$"
"""


@pytest.fixture
def binaries() -> None:
    require_binary("psql", "apt-get install postgresql-client")
    require_binary("redis-cli", "apt-get install redis-tools")
    require(
        shutil.which("pg_ctl") is not None or bool(list_pg_bins()),
        "PostgreSQL server binaries (apt-get install postgresql)",
    )


def list_pg_bins() -> list[str]:
    import glob

    return glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")


def test_a_scenario_file_with_services(pytester: pytest.Pytester, binaries: None) -> None:
    pytester.path.joinpath("db.scenario.toml").write_text(FILE)
    result = pytester.runpytest("-v", "--setup-show")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "SETUP    F postgres" in out
    assert "SETUP    F redis" in out


def test_a_scenario_file_with_redis_alone(pytester: pytest.Pytester, binaries: None) -> None:
    pytester.path.joinpath("cache.scenario.toml").write_text(
        "[scenario]\nservices = ['redis']\n\n[[steps]]\nname = 'set'\n"
        "run = 'redis-cli -s $REDIS_SOCKET -n $REDIS_DB set k v'\n\n[[steps]]\nname = 'get'\n"
        "run = 'redis-cli -s $REDIS_SOCKET -n $REDIS_DB get k'\nexpect_stdout = '^v$'\n"
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_the_marker_starts_the_services_of_its_scenario(
    pytester: pytest.Pytester, binaries: None
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_cleanroom import scenario

        SC = (
            scenario("db")
            .with_services("postgres")
            .step("create", "psql -qc 'create table t (x int)'")
            .step("check", "psql -Atc 'select count(*) from t'", expect_stdout="^0$")
        )

        @pytest.mark.scenario(SC)
        def test_db(scenario_result, postgres):
            with postgres.connect() as conn:
                tables = conn.execute("select tablename from pg_tables where tablename = 't'")
                assert tables.fetchall() == [("t",)]
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_service_the_policy_does_not_allow_is_unreachable(
    pytester: pytest.Pytester, binaries: None
) -> None:
    pytester.path.joinpath("denied.scenario.toml").write_text(
        "[scenario]\nservices = ['postgres']\npolicy = { level = 'standard', "
        "allowed_services = ['redis'] }\n\n[[steps]]\nname = 'q'\nrun = \"psql -Atc 'select 1'\"\n"
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    # Neither mounted nor announced: psql falls back to its default socket, which is not there.
    result.stdout.fnmatch_lines(
        [
            "*step 'q' failed: expected exit code 0, got *",
            '*connection to server on socket "/var/run/postgresql/*" failed: No such file*',
        ]
    )


def test_a_service_that_cannot_start_fails_the_item_clearly(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("db.scenario.toml").write_text(
        "[scenario]\nservices = ['postgres']\n\n[[steps]]\nname = 'q'\nrun = 'true'\n"
    )
    # An external server that does not answer: a port nothing listens on.
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = pytester.runpytest(
        "--cleanroom-services=external",
        f"--cleanroom-postgres-url=postgresql://u:p@127.0.0.1:{port}/db",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at setup of scenario db*", "*cannot connect to the external PostgreSQL*"]
    )
    assert "Traceback" not in result.stdout.str()


MYSQL_FILE = """\
[scenario]
name = "orders"
services = ["mysql"]
policy = "strict"

# Debian's /etc/mysql/my.cnf names a socket and user of its own, which the client prefers to
# MYSQL_UNIX_PORT and MYSQL_USER (docs/services.md)
[[steps]]
name = "schema"
run = '''mariadb --socket="$MYSQL_UNIX_PORT" -u "$MYSQL_USER" -D "$MYSQL_DATABASE" \\
  -e 'create table orders (id int); insert into orders values (7)''''

[[steps]]
name = "query"
run = '''mariadb --socket="$MYSQL_UNIX_PORT" -u "$MYSQL_USER" -D "$MYSQL_DATABASE" \\
  -N -e 'select id from orders''''
expect_stdout = "^7$"
"""


def test_a_scenario_file_with_mysql(pytester: pytest.Pytester) -> None:
    require_binary("mariadb", "apt-get install mariadb-client")
    from pytest_cleanroom.services.binaries import find_mysql

    require(find_mysql() is not None, "MariaDB's server (apt-get install mariadb-server)")
    pytester.path.joinpath("orders.scenario.toml").write_text(MYSQL_FILE)
    result = pytester.runpytest("-v", "--setup-show")
    result.assert_outcomes(passed=1)
    assert "SETUP    F mysql" in result.stdout.str()


def test_a_gpack_test_section_names_any_registered_kind() -> None:
    from ggen_market.test_sections import CleanroomSection

    assert CleanroomSection.model_validate({"services": ["mysql"]}).services == ["mysql"]
    with pytest.raises(ValueError, match=r"unknown service kind 'mysq' \(did you mean 'mysql'\?\)"):
        CleanroomSection.model_validate({"services": ["mysq"]})
