"""Per-test isolation on real servers: cloned databases, per-worker Redis indexes."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pytest_cleanroom.services import cleanup
from pytest_cleanroom.services.binaries import find_postgres, find_redis
from pytest_cleanroom.services.errors import ServiceError
from pytest_cleanroom.services.postgres import PostgresServer
from pytest_cleanroom.services.postgres import process as pg_process
from pytest_cleanroom.services.postgres.isolation import DatabaseFactory
from pytest_cleanroom.services.postgres.template import build
from pytest_cleanroom.services.redis import RedisServer
from pytest_cleanroom.services.redis import process as redis_process
from pytest_cleanroom.services.redis.isolation import RedisSlot
from pytest_cleanroom.services.registry import Owner
from pytest_cleanroom.services.settings import ServiceSettings
from tests.conftest import require

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def runtime() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cri-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def pg(runtime: Path) -> Iterator[PostgresServer]:
    require(find_postgres() is not None, "PostgreSQL server binaries (apt-get install postgresql)")
    started = pg_process.start_postgres(
        ServiceSettings(runtime_dir=runtime, data_dir=runtime), run_id="iso", owner=Owner.current()
    )
    build(started.server, "cr_iso_template", (), runtime)
    yield started.server
    cleanup.stop(started.handle)
    started.registry.remove(started.record_id)


@pytest.fixture(scope="module")
def rd(runtime: Path) -> Iterator[RedisServer]:
    require(find_redis() is not None, "redis-server (apt-get install redis-server)")
    started = redis_process.start_redis(
        ServiceSettings(runtime_dir=runtime), run_id="iso", owner=Owner.current()
    )
    yield started.server
    cleanup.stop(started.handle)
    started.registry.remove(started.record_id)


def ours(server: PostgresServer, prefix: str) -> set[str]:
    with server.connect() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE starts_with(datname, %s)", (prefix,)
        )
        return {r[0] for r in rows}


@pytest.mark.parametrize("background", [True, False], ids=["background", "inline"])
def test_databases_are_fresh_private_and_all_gone_after_close(
    pg: PostgresServer, background: bool
) -> None:
    prefix = f"cr_iso_{'bg' if background else 'in'}_"
    threads = threading.active_count()
    factory = DatabaseFactory(pg, "cr_iso_template", prefix, background=background)
    seen = []
    for _ in range(4):
        db = factory.isolate()
        seen.append(db.dbname)
        with db.connect() as conn:
            assert conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname='public'"
            ).fetchone() == (0,)
            conn.execute("CREATE TABLE t (x int)")
        factory.reset(db)
    assert len(set(seen)) == 4
    # The server works ahead on its own: no thread in the test process (a test that forks would
    # warn about it, or deadlock).
    assert threading.active_count() == threads
    factory.close()
    assert ours(pg, prefix) == set()


def test_a_factory_on_a_server_that_ends_with_the_run_leaves_its_spare_to_it(
    pg: PostgresServer,
) -> None:
    factory = DatabaseFactory(pg, "cr_iso_template", "cr_iso_keep_", drop_leftovers=False)
    db = factory.isolate()  # the spare, cr_iso_keep_2, is being made meanwhile
    factory.reset(db)
    factory.close()  # returns at once: the server finishes what was sent
    deadline = time.monotonic() + 60
    while ours(pg, "cr_iso_keep_") != {"cr_iso_keep_2"}:
        assert time.monotonic() < deadline, ours(pg, "cr_iso_keep_")
        time.sleep(0.01)
    with pytest.raises(psycopg.OperationalError):
        db.connect()  # the test's own database is gone all the same


def test_a_database_is_dropped_under_open_sessions_and_a_held_lock(pg: PostgresServer) -> None:
    factory = DatabaseFactory(pg, "cr_iso_template", "cr_iso_lock_", background=False)
    db = factory.isolate()
    busy = psycopg.connect(db.dsn)  # outside the fixture's knowledge
    busy.execute("CREATE TABLE t (x int)")
    busy.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")  # transaction left open
    idle = db.connect()
    factory.reset(db)
    assert ours(pg, "cr_iso_lock_") == set()
    with pytest.raises(psycopg.OperationalError):
        busy.execute("SELECT 1")
    assert idle.closed
    busy.close()
    factory.close()


def test_a_failed_spare_is_replaced_and_explained(pg: PostgresServer) -> None:
    with pg.connect(autocommit=True) as admin:
        admin.execute("CREATE DATABASE cr_iso_doomed TEMPLATE template0")
    factory = DatabaseFactory(pg, "cr_iso_doomed", "cr_iso_sp_")
    first = factory.isolate()  # also starts preparing the next one in the background
    deadline = time.monotonic() + 60
    while len(ours(pg, "cr_iso_sp_")) < 2:  # wait until the spare exists
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pg.connect(autocommit=True) as admin:
        admin.execute("DROP DATABASE cr_iso_doomed WITH (FORCE)")
    factory.reset(first)
    second = factory.isolate()  # the spare exists already (or is created now, which must fail)
    assert second.dbname != first.dbname
    factory.reset(second)
    with pytest.raises(ServiceError, match=r'cannot create the test database .*"cr_iso_doomed"'):
        factory.isolate()
    factory.close()
    assert ours(pg, "cr_iso_sp_") == set()


def test_a_worker_flushing_its_redis_index_never_touches_another_workers(rd: RedisServer) -> None:
    gw0, gw1 = RedisSlot(rd, 0, "gw0"), RedisSlot(rd, 1, "gw1")
    other = gw1.isolate()
    other.client().set("gw1-data", "kept")
    mine = gw0.isolate()
    mine.client().set("gw0-data", "gone soon")
    gw0.reset(mine)  # the end of one of gw0's tests
    assert rd.client(0).dbsize() == 0
    assert rd.client(1).get("gw1-data") == b"kept"
    gw1.reset(other)
    assert rd.client(1).dbsize() == 0
    gw0.close()
    gw1.close()


def test_a_worker_beyond_the_servers_databases_is_told_what_to_do(rd: RedisServer) -> None:
    with pytest.raises(ServiceError, match="run fewer xdist workers"):
        RedisSlot(rd, rd.databases, f"gw{rd.databases}")


def test_a_crashed_earlier_run_leaves_nothing_for_the_first_test(rd: RedisServer) -> None:
    rd.client(2).set("from-a-crashed-run", "x")
    slot = RedisSlot(rd, 2, "gw2")
    assert slot.isolate().client().dbsize() == 0
    slot.close()
