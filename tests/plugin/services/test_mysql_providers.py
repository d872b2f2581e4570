"""The mysql fixture on the container providers (a container of cleanroom/mariadb on Docker and on
Podman) and on the external provider (a URL): the promises test_mysql.py checks on the process
provider, kept on each."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import docker  # noqa: F401  (loaded before pytester snapshots sys.modules)
import pytest

from pytest_cleanroom.services.binaries import find_mysql
from pytest_cleanroom.services.engines import ENGINES, ContainerEngine
from pytest_cleanroom.services.errors import ServiceStartError
from pytest_cleanroom.services.mysql import MysqlServer
from pytest_cleanroom.services.mysql import process as mysql_process
from pytest_cleanroom.services.mysql.external import connect_mysql
from pytest_cleanroom.services.registry import Owner
from pytest_cleanroom.services.settings import ServiceSettings
from tests.conftest import require, require_binary
from tests.integration.services.conftest import (
    child_env,
    docker_client,
    engine_env,
    require_engine,
)
from tests.integration.services.test_crash_recovery import run_later, start_holding_run
from tests.integration.services.test_external import SECRET, team_server

from .test_mysql import BREAK_OUT, ISOLATION, SANDBOX

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("runtime_dir")]


@pytest.fixture(scope="module")
def team_mariadb() -> Iterator[MysqlServer]:
    """The "team's own" MariaDB: a user 'team' that may create users and grant, a user 'reader'
    that may not, and a database of theirs with data."""
    require(find_mysql() is not None, "MariaDB's server (apt-get install mariadb-server)")
    with team_server(mysql_process.start_mysql) as server:
        with server.connect(autocommit=True) as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE USER 'team'@'%' IDENTIFIED BY '{SECRET}'")
            cursor.execute("GRANT ALL PRIVILEGES ON *.* TO 'team'@'%' WITH GRANT OPTION")
            cursor.execute(f"CREATE USER 'reader'@'%' IDENTIFIED BY '{SECRET}'")
            cursor.execute("CREATE DATABASE precious")
            cursor.execute("CREATE TABLE precious.t (x int)")
            cursor.execute("INSERT INTO precious.t VALUES (42)")
        yield server


def team_url(server: MysqlServer, user: str = "team", password: str = SECRET) -> str:
    return f"mysql://{user}:{password}@127.0.0.1:{server.port}/"


def objects(server: MysqlServer) -> tuple[set[str], set[str]]:
    """The server's databases and users."""
    with server.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SHOW DATABASES")
        databases = {str(row[0]) for row in cursor.fetchall()}
        cursor.execute("SELECT CONCAT(User, '@', Host) FROM mysql.global_priv")
        users = {str(row[0]) for row in cursor.fetchall()}
    return databases, users


@pytest.fixture(
    params=[
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("podman", marks=pytest.mark.podman),
        "external",
    ]
)
def provider(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The provider under test, set up through the environment as a user would."""
    if request.param in ENGINES:
        engine = ENGINES[request.param]
        require_engine(engine)  # the engine answers and holds cleanroom/mariadb
        for name, value in engine_env(engine).items():
            monkeypatch.setenv(name, value)
    else:
        team = request.getfixturevalue("team_mariadb")
        monkeypatch.setenv("CLEANROOM_MYSQL_URL", team_url(team))
    return str(request.param)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_database_per_test_on_one_server_for_the_run(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    provider: str,
    workers: str,
) -> None:
    seen = pytester.mkdir("seen")
    monkeypatch.setenv("SERVERS_SEEN", str(seen))
    team = request.getfixturevalue("team_mariadb") if provider == "external" else None
    before = objects(team) if team else None
    pytester.makepyfile(test_isolation=ISOLATION)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", workers)
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines([f"cleanroom services:*mysql={provider} *"])
    lines = [line.split() for f in Path(seen).iterdir() for line in f.read_text().splitlines()]
    assert len({port for port, _ in lines}) == 1  # every worker used the same server
    assert len({name for _, name in lines}) == 4  # and each test a database of its own
    if team is not None:
        assert SECRET not in result.stdout.str()
        assert {port for port, _ in lines} == {str(team.port)}
        assert objects(team) == before  # every database and user of the run was dropped
        with team.connect("precious") as conn, conn.cursor() as cursor:
            cursor.execute("SELECT x FROM t")
            assert cursor.fetchall() == ((42,),)


def test_server_wide_changes_are_refused_or_undone(
    pytester: pytest.Pytester, provider: str
) -> None:
    pytester.makepyfile(test_break_out=BREAK_OUT)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--dist", "loadfile"
    )
    result.assert_outcomes(passed=14)


def test_a_sandbox_reaches_the_container_only_when_the_policy_lists_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, engine: ContainerEngine
) -> None:
    require_binary("bwrap", "apt-get install bubblewrap")
    require_binary("mariadb", "apt-get install mariadb-client")
    for name, value in engine_env(engine).items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(test_sandbox=SANDBOX)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    # listed (standard, locked as nobody), not listed, no DATABASE_URL with postgres (both orders)
    result.assert_outcomes(passed=5)


HOLD = """
import os, time
from pathlib import Path

def test_hold(mysql):
    conn = mysql.connect()
    with conn.cursor() as cursor:
        cursor.execute("CREATE TABLE t (x int)")
    Path(os.environ["READY_FILE"]).write_text(mysql.dbname)
    time.sleep(300)
"""


def test_a_killed_runs_container_is_removed_by_the_next_run(
    tmp_path: Path, runtime_dir: Path, engine: ContainerEngine
) -> None:
    env = child_env(runtime_dir, **engine_env(engine))
    proc = start_holding_run(tmp_path, env, script=HOLD)
    owner = f"io.cleanroom.owner-pid={proc.pid}"
    client = docker_client(engine)
    try:
        (container,) = client.containers.list(filters={"label": owner})
        assert container.labels["io.cleanroom.role"] == "mysql"
        bindings = container.attrs["HostConfig"]["PortBindings"]["3306/tcp"]
        assert container.labels["io.cleanroom.run"]  # its run, for the labelled sweep
        assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]  # loopback only
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert client.containers.list(filters={"label": owner}), "it outlives the killed run"
        assert "removed mysql of crashed run" in run_later(tmp_path, runtime_dir)
        assert client.containers.list(all=True, filters={"label": owner}) == []
    finally:
        for left in client.containers.list(all=True, filters={"label": owner}):
            left.remove(force=True)
        client.close()


def test_a_killed_runs_databases_and_users_are_dropped_from_the_external_server(
    tmp_path: Path, runtime_dir: Path, team_mariadb: MysqlServer
) -> None:
    before = objects(team_mariadb)
    env = child_env(runtime_dir, CLEANROOM_MYSQL_URL=team_url(team_mariadb))
    proc = start_holding_run(tmp_path, env, script=HOLD)
    dbname = (tmp_path / "ready").read_text()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    databases, users = objects(team_mariadb)
    assert dbname in databases  # left by the killed run
    assert f"{dbname}@%" in users
    assert "removed mysql of crashed run" in run_later(tmp_path, runtime_dir)
    assert objects(team_mariadb) == before


def test_a_user_that_may_not_grant_is_told_the_fix(
    team_mariadb: MysqlServer, runtime_dir: Path
) -> None:
    settings = ServiceSettings(
        runtime_dir=runtime_dir,
        mysql_url=team_url(team_mariadb, user="reader"),
        mysql_url_source="CLEANROOM_MYSQL_URL",
    )
    with pytest.raises(ServiceStartError, match=r"GRANT ALL PRIVILEGES ON \*\.\* TO reader"):
        connect_mysql(settings, run_id="refused", owner=Owner.current())


def test_a_wrong_password_is_named_without_showing_it(
    team_mariadb: MysqlServer, runtime_dir: Path
) -> None:
    wrong = "definitely-Wrong-9"
    settings = ServiceSettings(
        runtime_dir=runtime_dir,
        mysql_url=team_url(team_mariadb, password=wrong),
        mysql_url_source="CLEANROOM_MYSQL_URL",
    )
    with pytest.raises(ServiceStartError) as info:
        connect_mysql(settings, run_id="refused", owner=Owner.current())
    message = str(info.value)
    assert "CLEANROOM_MYSQL_URL" in message
    assert "password in the URL" in message
    assert wrong not in message
