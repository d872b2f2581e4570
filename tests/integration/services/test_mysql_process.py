"""The process provider's MariaDB: started unprivileged from the machine's binaries, only its
administrator can log in, and a crashed run's server is removed by the next run's sweep."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pymysql
import pytest

from pytest_cleanroom.services import cleanup
from pytest_cleanroom.services.binaries import find_mysql
from pytest_cleanroom.services.mysql.isolation import MysqlDatabaseFactory, _kill
from pytest_cleanroom.services.mysql.process import start_mysql
from pytest_cleanroom.services.registry import Owner, Registry
from pytest_cleanroom.services.settings import ServiceSettings
from tests.conftest import require
from tests.integration.services.conftest import leftovers, processes_under

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def need_mariadb() -> None:
    require(find_mysql() is not None, "MariaDB's server (apt-get install mariadb-server)")


def _dead_owner() -> Owner:
    dead = subprocess.Popen(["true"])
    dead.wait()
    return Owner(dead.pid, "1", Owner.current().host, Owner.current().pidns)


def test_only_the_administrator_logs_in_and_a_crashed_run_is_swept(
    settings: ServiceSettings, runtime_dir: Path
) -> None:
    started = start_mysql(settings, run_id="crashed", owner=_dead_owner())
    server = started.server
    (pid,) = processes_under(runtime_dir)
    if os.geteuid() == 0:  # as root, the server runs as another account
        assert os.stat(f"/proc/{pid}").st_uid != 0
    with server.connect() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT CONCAT(User, '@', Host) FROM mysql.global_priv ORDER BY 1")
        users = [row[0] for row in cursor.fetchall()]
    assert users == ["mariadb.sys@localhost", "root@127.0.0.1", "root@localhost"]
    for user, password in (("root", ""), ("root", "wrong"), ("", ""), ("mysql", "")):
        with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
            pymysql.connect(host="127.0.0.1", port=server.port, user=user, password=password)
        with pytest.raises(pymysql.err.OperationalError, match="Access denied"):
            pymysql.connect(unix_socket=server.unix_socket, user=user, password=password)
    assert not list(runtime_dir.glob("*/init.sql"))  # the password file is gone

    # A session that ended between the look-up and the KILL (a client that has just closed) does
    # not fail the test's teardown: MariaDB answers "Unknown thread id", which is fine.
    factory = MysqlDatabaseFactory(server, "cr_crashed_master_")
    database = factory.isolate()
    with server.connect() as admin:
        _kill(admin, 2**31 - 1)
    factory.reset(database)
    factory.close()

    removed = Registry(runtime_dir).sweep(cleanup.stop)
    (message,) = removed
    assert message.startswith("removed mysql of crashed run crashed")
    assert processes_under(runtime_dir) == []
    assert leftovers(runtime_dir) == []
