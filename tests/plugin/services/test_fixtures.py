"""The postgres / redis fixtures as a user's suite sees them (process provider)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest_plugins = ("pytester",)
pytestmark = pytest.mark.usefixtures("binaries", "runtime_dir")


def test_attributes_and_connections(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import psycopg
        from urllib.parse import urlsplit

        def test_postgres(postgres, postgres_server):
            assert postgres.server is postgres_server or postgres.server == postgres_server
            assert postgres.host == "127.0.0.1" and postgres.port == postgres_server.port
            assert postgres.user == postgres.dbname and postgres.password  # its own role
            assert postgres.dbname.startswith("cr_") and postgres.dbname != "postgres"
            assert postgres.version.startswith(postgres_server.version.split(".")[0])
            assert postgres.unix_socket_dir and postgres.unix_socket_dir.startswith("/")
            with postgres.connect() as conn:
                conn.execute("CREATE TABLE t (x int)")
                conn.execute("INSERT INTO t VALUES (1)")
                assert conn.info.dbname == postgres.dbname
            with psycopg.connect(postgres.dsn) as conn:  # over TCP with the password
                assert conn.execute("SELECT x FROM t").fetchall() == [(1,)]
            url = urlsplit(postgres.url)
            assert url.scheme == "postgresql+psycopg"
            assert (url.hostname, url.port) == ("127.0.0.1", postgres.port)
            assert url.username == postgres.dbname
            assert url.path == "/" + postgres.dbname
            with psycopg.connect(postgres.uri) as conn:
                assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
            with postgres.connect(superuser=True) as conn:
                assert conn.execute("SELECT current_user").fetchone() == (postgres_server.user,)

        def test_redis(redis, redis_server):
            client = redis.client()
            client.set("k", "v")
            assert client.get("k") == b"v"
            assert redis.db == 0 and redis.host == "127.0.0.1" and redis.port == redis_server.port
            assert redis.url.endswith(f"@127.0.0.1:{redis.port}/0")
            import redis as redis_py
            assert redis_py.Redis.from_url(redis.url).get("k") == b"v"
            assert redis.unix_socket.endswith("redis.sock")
        """
    )
    pytester.runpytest().assert_outcomes(passed=2)


def test_every_test_gets_an_empty_database_and_leftovers_are_dropped(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import time
        import pytest

        def test_1_writes(postgres, redis):
            with postgres.connect() as conn:
                conn.execute("CREATE TABLE mine (x int)")
            redis.client().set("mine", "1")

        def test_2_leaves_connections_open(postgres):
            conn = postgres.connect()
            conn.execute("CREATE TABLE t (x int)")
            conn.commit()
            # A connection opened behind the fixture's back, never closed.
            import psycopg
            pytest.stray = psycopg.connect(postgres.dsn)
            pytest.stray.execute("SELECT 1")

        def test_3_crashes_mid_transaction(postgres):
            conn = postgres.connect()
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
            raise RuntimeError("boom, with the transaction still open")

        def test_4_sees_nothing_of_the_others(postgres, redis, postgres_server):
            with postgres.connect() as conn:
                tables = conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                ).fetchall()
            assert tables == []
            assert redis.client().dbsize() == 0
            # Earlier tests' databases are dropped (in the background: allow a moment). Only
            # this test's, the template and the next test's, prepared ahead, may exist.
            prefix, _, number = postgres.dbname.rpartition("_")
            deadline = time.monotonic() + 30
            while True:
                with postgres_server.connect() as conn:
                    names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
                earlier = {
                    n for n in names
                    if n.startswith(prefix + "_") and n.rpartition("_")[2].isdigit()
                    and int(n.rpartition("_")[2]) < int(number)
                }
                if not earlier:
                    break
                assert time.monotonic() < deadline, earlier
                time.sleep(0.05)
            assert postgres.dbname in names
            # The stray session was terminated when its database was dropped.
            import psycopg
            with pytest.raises(psycopg.OperationalError):
                pytest.stray.execute("SELECT 1")
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["E * RuntimeError: boom, with the transaction still open"])


def test_redis_is_emptied_after_each_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.parametrize("n", range(3))
        def test_fill(redis, n):
            client = redis.client()
            assert client.dbsize() == 0
            client.mset({f"k{i}": i for i in range(50)})
        """
    )
    pytester.runpytest().assert_outcomes(passed=3)


@pytest.mark.parametrize("workers", ["2", "auto"])
def test_under_xdist_one_postgres_serves_every_worker_and_each_has_its_redis(
    pytester: pytest.Pytester, runtime_dir: Path, workers: str
) -> None:
    pytester.makepyfile(
        """
        import os, pytest

        @pytest.mark.parametrize("n", range(8))
        def test_share(postgres, redis, n):
            with postgres.connect() as conn:
                start = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
                conn.execute("CREATE TABLE t (x int)")
            worker = os.environ["PYTEST_XDIST_WORKER"]
            client = redis.client()
            assert client.dbsize() == 0
            client.set("who", worker)
            line = f"{worker} {postgres.port} {start.isoformat()} {redis.port} {redis.db}\\n"
            with open(os.path.join(os.path.dirname(__file__), "seen.txt"), "a") as fh:
                fh.write(line)
        """
    )
    result = pytester.runpytest_subprocess("-n", workers, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=8)
    rows = [line.split() for line in (pytester.path / "seen.txt").read_text().splitlines()]
    workers_seen = {row[0] for row in rows}
    assert len(workers_seen) >= 2
    assert len({tuple(row[1:3]) for row in rows}) == 1  # one postgres for the run
    redis_ports = {row[0]: row[3] for row in rows}  # one redis per worker, database 0
    assert len(set(redis_ports.values())) == len(workers_seen)
    assert {row[4] for row in rows} == {"0"}


# Records, at the services' teardown, whether pytest still locks the run's basetemp.
LOCK_SPY = """
from pathlib import Path

import pytest_cleanroom.services.plugin as plugin

real = plugin.teardown_run


def teardown_run(state_dir):
    Path("locked-at-teardown").write_text(str((state_dir.parent / ".lock").exists()))
    return real(state_dir)


plugin.teardown_run = teardown_run
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_servers_stop_while_pytest_still_locks_the_run_directory(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    """pytest removes its basetemp's .lock in its own sessionfinish; from then on another
    pytest of the same user may delete the directory as an old numbered one, and the servers'
    state files are in it. So they are stopped first (seen: a FileNotFoundError on a state file
    ended a docker-provider run at -n 2 while other suites ran)."""
    temproot = pytester.mkdir("temproot")  # a default, numbered basetemp: no --basetemp
    monkeypatch.setenv("PYTEST_DEBUG_TEMPROOT", str(temproot))
    pytester.makeconftest(LOCK_SPY)
    pytester.makepyfile("def test_one(redis):\n    redis.client().ping()\n")
    result = pytester.run(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", workers)
    assert result.ret == 0, result.stdout.str()
    assert (pytester.path / "locked-at-teardown").read_text() == "True"
