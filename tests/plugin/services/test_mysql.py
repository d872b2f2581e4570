"""The mysql fixture on a real MariaDB server: a database and a user per test, one server for
the whole run at -n 0 and -n 2, server-wide changes refused or undone, nothing left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom.services.binaries import find_mysql
from tests.conftest import require, require_binary

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("runtime_dir")]


@pytest.fixture(autouse=True)
def need_mariadb() -> None:
    require(find_mysql() is not None, "MariaDB's server (apt-get install mariadb-server)")


ISOLATION = """
import os

import pymysql
import pytest


def rows(conn, sql, *args):
    with conn.cursor() as cursor:
        cursor.execute(sql, args)
        return cursor.fetchall()


@pytest.mark.parametrize("n", range(4))
def test_a_database_of_its_own(mysql, mysql_server, n):
    with mysql.connect() as conn:
        assert rows(conn, "SELECT DATABASE(), CURRENT_USER()") == (
            (mysql.dbname, mysql.user + "@%"),
        )
        assert rows(conn, "SHOW TABLES") == ()  # the previous test's table is not here
        rows(conn, "CREATE TABLE orders (id int)")
        rows(conn, "INSERT INTO orders VALUES (%s)", n)
        conn.commit()
    out = os.environ["SERVERS_SEEN"]
    with open(os.path.join(out, os.environ.get("PYTEST_XDIST_WORKER", "master")), "a") as fh:
        fh.write(f"{mysql_server.port} {mysql.dbname}\\n")


def test_drivers(mysql):
    for url in (mysql.url, mysql.url_for("pymysql", via_socket=True)):
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT DATABASE()")).scalar() == mysql.dbname
        engine.dispose()
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_database_per_test_on_one_server_for_the_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    seen = pytester.mkdir("seen")
    monkeypatch.setenv("SERVERS_SEEN", str(seen))
    pytester.makepyfile(test_isolation=ISOLATION)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", workers)
    result.assert_outcomes(passed=5)
    lines = [line.split() for f in Path(seen).iterdir() for line in f.read_text().splitlines()]
    assert len({port for port, _ in lines}) == 1  # every worker used the same server
    assert len({name for _, name in lines}) == 4  # and each test a database of its own
    if workers == "2":
        assert len(list(Path(seen).iterdir())) == 2


BREAK_OUT = """
import pymysql
import pytest

DENIED = (pymysql.err.OperationalError, pymysql.err.ProgrammingError, pymysql.err.InternalError)


def run(conn, sql):
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


@pytest.fixture
def neighbour(mysql_server):
    with mysql_server.connect(autocommit=True) as admin:
        run(admin, "CREATE DATABASE neighbour")
        run(admin, "CREATE TABLE neighbour.secrets (s text)")
        run(admin, "INSERT INTO neighbour.secrets VALUES ('hunter2')")
    yield
    with mysql_server.connect(autocommit=True) as admin:
        run(admin, "DROP DATABASE neighbour")


@pytest.mark.parametrize(
    "statement",
    [
        "SET GLOBAL max_connections = 5",
        "CREATE USER 'sneaky'@'%'",
        "GRANT ALL ON *.* TO CURRENT_USER()",
        "CREATE DATABASE another",
        "SELECT * FROM neighbour.secrets",
        "SELECT * FROM mysql.global_priv",
        "SELECT 1 INTO OUTFILE '/tmp/cleanroom-mysql-outfile'",
        "SHUTDOWN",
        "FLUSH PRIVILEGES",
        "SET GLOBAL event_scheduler = ON",
        "INSTALL SONAME 'ha_blackhole'",
    ],
)
def test_refused(mysql, neighbour, statement):
    with mysql.connect() as conn:
        with pytest.raises(DENIED):
            run(conn, statement)


def test_no_file_reading_and_no_other_sessions(mysql, mysql_server):
    with mysql.connect() as conn:
        assert run(conn, "SELECT LOAD_FILE('/etc/passwd')") == ((None,),)
        others = run(conn, "SELECT USER FROM information_schema.PROCESSLIST")
        assert {row[0] for row in others} == {mysql.user}
        with mysql_server.connect() as admin:
            admin_id = run(admin, "SELECT CONNECTION_ID()")[0][0]
            with pytest.raises(DENIED):
                run(conn, f"KILL {admin_id}")


def test_1_the_administrator_changes_the_server(mysql):
    with mysql.connect(superuser=True, autocommit=True) as conn:
        run(conn, "SET GLOBAL max_connections = 17")
        run(conn, "CREATE USER 'sneaky'@'%'")
    holder = mysql.connect()
    assert run(holder, "SELECT GET_LOCK('shared', 0)") == ((1,),)  # left open on purpose


def test_2_finds_it_as_it_was(mysql):
    with mysql.connect(superuser=True) as conn:
        assert run(conn, "SELECT @@GLOBAL.max_connections") == ((300,),)
        assert run(conn, "SELECT count(*) FROM mysql.global_priv WHERE User = 'sneaky'") == ((0,),)
    with mysql.connect() as conn:  # the previous test's session (and its lock) is gone
        assert run(conn, "SELECT GET_LOCK('shared', 0)") == ((1,),)
"""


def test_server_wide_changes_are_refused_or_undone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_break_out=BREAK_OUT)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile"
    )
    result.assert_outcomes(passed=14)


def test_no_mariadb_is_one_clear_error(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makeini(f"[pytest]\ncleanroom_mysql_bin_dir = {tmp_path}\n")
    pytester.makepyfile(test_one="def test_one(mysql):\n    pass\n")
    # The process provider alone: under auto, a Docker engine would serve instead.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--cleanroom-services=process")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*ServiceUnavailableError*no mysql server binaries*apt-get install mariadb-server*"]
    )


SANDBOX = """
import pytest

# --socket: Debian's /etc/mysql/my.cnf names a socket of its own, which beats MYSQL_UNIX_PORT.
CLIENT = 'mariadb --socket="$MYSQL_UNIX_PORT" -u "$MYSQL_USER" -N -e "{}" "$MYSQL_DATABASE"'


@pytest.mark.cleanroom(network="isolated")
def test_listed(cleanroom, mysql):
    with mysql.connect() as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TABLE orders (id int)")
        cursor.execute("INSERT INTO orders VALUES (7)")
        conn.commit()
    result = cleanroom.run(["sh", "-c", CLIENT.format("SELECT id FROM orders")])
    result.assert_success()
    assert result.stdout.strip() == "7"
    denied = cleanroom.run(["sh", "-c", CLIENT.format("SET GLOBAL max_connections = 5")])
    assert denied.exit_code != 0
    assert "denied" in denied.stderr


def test_listed_under_locked(cleanroom, mysql):
    # locked runs the client as the host's nobody: the socket directory is shown to that user.
    result = cleanroom.run(["sh", "-c", CLIENT.format("SELECT 41 + 1")], policy="locked")
    result.assert_success()
    assert result.stdout.strip() == "42"


@pytest.mark.cleanroom(network="isolated", allowed_services=["postgres"])
def test_not_listed(cleanroom, mysql):
    result = cleanroom.run(["sh", "-c", CLIENT.format("SELECT 1")])
    assert result.exit_code != 0
    assert "MYSQL_USER" not in cleanroom.run(["env"]).stdout


def url_in(cleanroom):
    return cleanroom.run(["sh", "-c", 'echo "$DATABASE_URL"']).assert_success().stdout


# Both give a DATABASE_URL: a command that may reach both gets none (which one would depend on
# the fixtures' order, docs/services.md); PG* and MYSQL_* name each server whatever the order.
def test_no_database_url_with_both(cleanroom, postgres, mysql):
    assert url_in(cleanroom).strip() == ""
    result = cleanroom.run(["sh", "-c", 'psql -Atc "SELECT current_database()"'])
    assert result.assert_success().stdout.strip() == postgres.dbname


def test_no_database_url_with_both_reversed(cleanroom, mysql, postgres):
    assert url_in(cleanroom).strip() == ""
    only_mysql = cleanroom.policy.replace(allowed_services=("mysql",))
    only = cleanroom.run(["sh", "-c", 'echo "$DATABASE_URL"'], policy=only_mysql)
    assert only.assert_success().stdout.startswith("mysql://")
    result = cleanroom.run(["sh", "-c", CLIENT.format("SELECT DATABASE()")])
    assert result.assert_success().stdout.strip() == mysql.dbname
"""


def test_a_sandbox_reaches_mysql_only_when_the_policy_lists_it(pytester: pytest.Pytester) -> None:
    require_binary("bwrap", "apt-get install bubblewrap")
    require_binary("mariadb", "apt-get install mariadb-client")
    pytester.makepyfile(test_sandbox=SANDBOX)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
