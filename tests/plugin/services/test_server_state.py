"""One test's server-level change never reaches another test, at -n 0 and -n 2."""

from __future__ import annotations

import pytest

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("binaries", "runtime_dir")]

SEQUENTIAL = """
import hashlib

import psycopg
import pytest

FUNCTION = "#!lua name=lib\\nredis.register_function('one', function() return 1 end)"


def test_1_changes_the_servers(postgres, redis):
    with postgres.connect(autocommit=True) as conn:
        for statement in ("ALTER SYSTEM SET work_mem = '7MB'", "CREATE ROLE sneaky"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    with postgres.connect(superuser=True, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET work_mem = '7MB'")
        conn.execute("SELECT pg_reload_conf()")
        conn.execute("CREATE ROLE sneaky")
    client = redis.client()
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.function_load(FUNCTION)
    client.script_load("return 2")
    client.acl_setuser("sneaky", enabled=True, nopass=True, commands=["+@all"], keys=["*"])
    client.select(5)
    client.set("elsewhere", "1")


def test_2_finds_them_as_they_were(postgres, redis):
    with postgres.connect(superuser=True) as conn:
        sneaky = "SELECT count(*) FROM pg_roles WHERE rolname = 'sneaky'"
        assert conn.execute(sneaky).fetchone() == (0,)
        auto = "SELECT count(*) FROM pg_file_settings WHERE sourcefile LIKE '%auto.conf'"
        assert conn.execute(auto).fetchone() == (0,)
    client = redis.client()
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert client.function_list() == []
    assert client.script_exists(hashlib.sha1(b"return 2").hexdigest()) == [False]
    assert sorted(map(str, client.acl_users())) == ["cleanroom", "default"]
    client.select(5)
    assert client.dbsize() == 0
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_server_changes_are_refused_or_undone_for_the_next_test(
    pytester: pytest.Pytester, workers: str
) -> None:
    pytester.makepyfile(test_state=SEQUENTIAL)
    # loadfile: both tests run on one worker, one after the other.
    result = pytester.runpytest_subprocess("-n", workers, "--dist", "loadfile")
    result.assert_outcomes(passed=2)


PUBSUB = """
import os, time, pathlib

def test_each_worker_hears_only_its_own(redis, tmp_path_factory):
    me = os.environ.get("PYTEST_XDIST_WORKER", "master")
    shared = tmp_path_factory.getbasetemp().parent
    listener = redis.client().pubsub()
    listener.subscribe("news")
    listener.get_message(timeout=5)  # the subscription's confirmation
    (shared / f"ready-{me}").touch()
    deadline = time.monotonic() + 60
    while len(list(shared.glob("ready-*"))) < 2:  # both workers listen before anyone talks
        assert time.monotonic() < deadline, "the other worker never started"
        time.sleep(0.01)
    publisher = redis.client()
    for n in range(29):
        publisher.publish("news", f"{me}:{n}")
    heard = []
    end = time.monotonic() + 2
    while time.monotonic() < end:
        message = listener.get_message(timeout=0.2)
        if message and message["type"] == "message":
            heard.append(message["data"].decode())
    listener.close()
    assert heard == [f"{me}:{n}" for n in range(29)]
"""


def test_pub_sub_does_not_cross_xdist_workers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_pubsub=PUBSUB)
    # --dist each: both workers run the test at the same time.
    result = pytester.runpytest_subprocess("-n", "2", "--dist", "each")
    result.assert_outcomes(passed=2)
