"""A failing test's server log section holds its own lines, not those of a test running at the
same time on another xdist worker of the same shared server."""

from __future__ import annotations

import re

import pytest

from pytest_cleanroom.services.binaries import find_mysql
from pytest_cleanroom.services.engines import ContainerEngine
from pytest_cleanroom.services.mysql.log import mysql_lines
from pytest_cleanroom.services.postgres.log import postgres_lines
from tests.conftest import require
from tests.integration.services.conftest import engine_env

#: Both workers (``--dist each``) run the test at the same time: each waits for the other to
#: start, makes its server log errors naming its worker, waits for the other to finish, and
#: only gw0's fails (printing its database's name).
BOTH_WORKERS = """
import os, time
from pathlib import Path

BARRIER = Path({barrier!r})

def meet(step, me):
    (BARRIER / f"{{step}}-{{me}}").touch()
    for _ in range(1200):
        if len(list(BARRIER.glob(f"{{step}}-*"))) == 2:
            return
        time.sleep(0.05)
    raise AssertionError(f"the other worker never reached {{step}}")

def test_errors_at_the_same_time({fixture}):
    me = os.environ["PYTEST_XDIST_WORKER"]
    meet("start", me)
{body}
    meet("done", me)
    assert me != "gw0", f"fails on purpose; database {{{fixture}.dbname}}"
"""

POSTGRES_BODY = """
    with postgres.connect(autocommit=True) as conn:
        for i in range(15):
            try:
                conn.execute(f"SELECT * FROM missing_of_{me}_{i}")
            except Exception:
                pass
"""

# MariaDB logs no SQL error; it logs a connection the server aborts, naming its database.
MYSQL_BODY = """
    import pymysql
    conn = mysql.connect()
    conn.cursor().execute("SET SESSION wait_timeout = 1")
    time.sleep(2.5)  # the server drops the idle connection: "Aborted connection ... to db: ..."
    try:
        conn.close()
    except Exception:
        pass
    try:
        pymysql.connect(unix_socket=mysql.unix_socket, user=mysql.user, password="wrong-" + me)
    except pymysql.err.OperationalError:
        pass
"""


def _run(pytester: pytest.Pytester, fixture: str, body: str, *args: str) -> tuple[str, str]:
    """Run both workers' test; the failing one's log section and its database's name."""
    barrier = pytester.mkdir("barrier")
    pytester.makepyfile(BOTH_WORKERS.format(barrier=str(barrier), fixture=fixture, body=body))
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--dist", "each", *args
    )
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    dbname = re.search(r"AssertionError: fails on purpose; database (\S+)", out)
    section = re.search(
        rf"-+ cleanroom {fixture} server log \(since the test began\) -+\n(.*?)\n(?:[-=_]{{5}})",
        out,
        re.DOTALL,
    )
    assert dbname is not None, out
    assert section is not None, out
    return section[1], dbname[1]


def _assert_postgres_section(section: str, dbname: str) -> None:
    errors = [line for line in section.splitlines() if " ERROR:  " in line]
    assert len(errors) == 15, section  # all of its own, none of gw1's
    assert all(f" db={dbname},user=" in line for line in errors), section
    assert "missing_of_gw0_" in section
    assert "_gw1_" not in section  # nor its database's name (cr_<run>_gw1_<n>)


@pytest.mark.usefixtures("binaries", "runtime_dir")
def test_postgres_process_section_holds_only_its_own_databases_lines(
    pytester: pytest.Pytester,
) -> None:
    section, dbname = _run(pytester, "postgres", POSTGRES_BODY)
    _assert_postgres_section(section, dbname)


@pytest.mark.usefixtures("runtime_dir")
def test_postgres_container_section_holds_only_its_own_databases_lines(
    engine: ContainerEngine, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``engine`` first: the docker SDK it imports must not be among the modules that pytester
    # removes again after the test (a later import of requests would then break the SDK's).
    for name, value in engine_env(engine).items():
        monkeypatch.setenv(name, value)
    section, dbname = _run(pytester, "postgres", POSTGRES_BODY)
    _assert_postgres_section(section, dbname)


@pytest.mark.usefixtures("runtime_dir")
def test_mysql_section_holds_its_own_and_server_wide_lines(pytester: pytest.Pytester) -> None:
    require(find_mysql() is not None, "MariaDB server (apt-get install mariadb-server)")
    section, dbname = _run(pytester, "mysql", MYSQL_BODY, "--cleanroom-services=process")
    # Both workers' servers lines were logged while gw0's test ran (it waited for gw1's end).
    assert "Aborted connection" in section
    assert f" to db: '{dbname}' user: '{dbname}' " in section
    assert f"Access denied for user '{dbname}'@" in section
    assert "_gw1_" not in section, section


POSTGRES_LOG = """\
2026-12-07 08:40:01.120 UTC [41] LOG:  database system is ready to accept connections
2026-12-07 08:40:02.001 UTC [77] db=cr_a_1,user=cr_a_1 ERROR:  relation "t" does not exist
2026-12-07 08:40:02.001 UTC [77] db=cr_a_1,user=cr_a_1 STATEMENT:  select *
\t  from t
2026-12-07 08:40:02.002 UTC [78] db=cr_a_2,user=cr_a_2 ERROR:  relation "u" does not exist
2026-12-07 08:40:02.002 UTC [78] db=cr_a_2,user=cr_a_2 STATEMENT:  select *
\t  from u
2026-12-07 08:40:02.003 UTC [79] db=,user= LOG:  incomplete startup packet
2026-12-07 08:40:03.000 UTC [41] LOG:  server process (PID 78) was terminated by signal 9
"""


def test_postgres_lines_keep_the_database_and_the_server_wide_ones() -> None:
    assert postgres_lines(POSTGRES_LOG, "cr_a_1").splitlines() == [
        "2026-12-07 08:40:01.120 UTC [41] LOG:  database system is ready to accept connections",
        '2026-12-07 08:40:02.001 UTC [77] db=cr_a_1,user=cr_a_1 ERROR:  relation "t" does not '
        "exist",
        "2026-12-07 08:40:02.001 UTC [77] db=cr_a_1,user=cr_a_1 STATEMENT:  select *",
        "\t  from t",
        "2026-12-07 08:40:03.000 UTC [41] LOG:  server process (PID 78) was terminated by signal 9",
    ]
    # A prefix of the user's own (no database in it): nothing can be told apart, all is kept.
    assert postgres_lines("LOG:  a\nERROR:  b", "cr_a_1") == "LOG:  a\nERROR:  b"


def test_mysql_lines_drop_those_naming_another_database_or_user() -> None:
    log = (
        "2026-12-07  8:40:01 0 [Note] InnoDB: Buffer pool(s) load completed\n"
        "2026-12-07  8:40:02 12 [Warning] Aborted connection 12 to db: 'cr_a_1' user: 'cr_a_1' "
        "host: 'localhost' (Got timeout reading communication packets)\n"
        "2026-12-07  8:40:02 13 [Warning] Aborted connection 13 to db: 'cr_a_2' user: 'cr_a_2' "
        "host: 'localhost' (Got timeout reading communication packets)\n"
        "2026-12-07  8:40:02 14 [Warning] Access denied for user 'cr_a_2'@'localhost' "
        "(using password: YES)\n"
    )
    kept = mysql_lines(log, "cr_a_1", "cr_a_1").splitlines()
    assert [line.split(" [")[0].split()[-1] for line in kept] == ["0", "12"]
