"""The external provider against servers "the team already runs" (started here, for real)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pytest_cleanroom.services import cleanup
from pytest_cleanroom.services.errors import ServiceStartError
from pytest_cleanroom.services.external import redact
from pytest_cleanroom.services.postgres import PostgresServer
from pytest_cleanroom.services.postgres import process as pg_process
from pytest_cleanroom.services.postgres.external import connect_postgres, drop_run_databases
from pytest_cleanroom.services.redis import RedisServer
from pytest_cleanroom.services.redis import process as redis_process
from pytest_cleanroom.services.redis.external import connect_redis
from pytest_cleanroom.services.registry import Owner, Started
from pytest_cleanroom.services.settings import ServiceSettings
from pytest_cleanroom.services.spawn import free_port
from tests.conftest import require

from .conftest import processes_under

pytestmark = pytest.mark.integration

SECRET = "s3cret-Pa55"


@contextlib.contextmanager
def team_server(start: Callable[..., Started[Any]]) -> Iterator[Any]:
    """The "team's own" server: started in a private directory by the process provider."""
    runtime = Path(tempfile.mkdtemp(prefix="crx-", dir="/tmp"))
    started = start(ServiceSettings(runtime_dir=runtime), run_id="team", owner=Owner.current())
    try:
        yield started.server
    finally:
        cleanup.stop(started.handle)
        started.registry.remove(started.record_id)
        assert processes_under(runtime) == []
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.fixture(scope="module")
def team_postgres() -> Iterator[PostgresServer]:
    """A running server with a role 'team' (CREATEDB) and a role 'reader' (no CREATEDB)."""
    from pytest_cleanroom.services.binaries import find_postgres

    require(find_postgres() is not None, "PostgreSQL server binaries (apt-get install postgresql)")
    with team_server(pg_process.start_postgres) as server:
        with server.connect(autocommit=True) as conn:
            conn.execute(f"CREATE ROLE team LOGIN CREATEDB PASSWORD '{SECRET}'")
            conn.execute(f"CREATE ROLE reader LOGIN PASSWORD '{SECRET}'")
            conn.execute("GRANT CONNECT ON DATABASE postgres TO team, reader")
            # A team's server lets its users in anywhere (ours let a role into its own database).
            hba = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
            with hba.open("a") as fh:
                fh.write("host all team,reader 127.0.0.1/32 scram-sha-256\n")
            conn.execute("SELECT pg_reload_conf()")
        yield server


@pytest.fixture(scope="module")
def team_redis() -> Iterator[RedisServer]:
    from pytest_cleanroom.services.binaries import find_redis

    require(find_redis() is not None, "redis-server (apt-get install redis-server)")
    with team_server(redis_process.start_redis) as server:
        yield server


def pg_url(server: PostgresServer, user: str = "team", password: str = SECRET) -> str:
    return f"postgresql://{user}:{password}@127.0.0.1:{server.port}/postgres"


def test_a_reachable_server_is_described(team_postgres: PostgresServer) -> None:
    server = connect_postgres(pg_url(team_postgres), "CLEANROOM_POSTGRES_URL", 10)
    assert (server.provider, server.host) == ("external", "127.0.0.1")
    assert server.port == team_postgres.port
    assert (server.user, server.password) == ("team", SECRET)
    assert server.version == team_postgres.version
    assert server.unix_socket_dir is None
    with psycopg.connect(server.dsn()) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("team",)


def test_a_wrong_password_is_named_without_showing_the_password(
    team_postgres: PostgresServer,
) -> None:
    wrong = "definitely-Wrong-9"
    with pytest.raises(ServiceStartError) as info:
        connect_postgres(pg_url(team_postgres, password=wrong), "CLEANROOM_POSTGRES_URL", 10)
    message = str(info.value)
    assert "CLEANROOM_POSTGRES_URL" in message
    assert "password authentication failed" in message
    assert "check the user name and the password" in message
    assert wrong not in message
    assert SECRET not in message
    assert f"team:***@127.0.0.1:{team_postgres.port}" in message


def test_a_user_without_createdb_is_refused_with_the_fix(team_postgres: PostgresServer) -> None:
    expected = r"may not create databases.*ALTER ROLE reader CREATEDB"
    with pytest.raises(ServiceStartError, match=expected):
        connect_postgres(pg_url(team_postgres, user="reader"), "--cleanroom-postgres-url", 10)


def test_nobody_listening_is_a_quick_clear_error() -> None:
    port = free_port()
    with pytest.raises(ServiceStartError, match="check the server is running"):
        connect_postgres(f"postgresql://u:p@127.0.0.1:{port}/postgres", "CLEANROOM_POSTGRES_URL", 5)


def test_dropping_a_run_drops_only_its_own_databases(team_postgres: PostgresServer) -> None:
    url = pg_url(team_postgres)
    with psycopg.connect(url, autocommit=True) as conn:
        for name in ("cr_dead01_gw0_1", "cr_dead01_template", "cr_alive2_gw0_1", "teamdata"):
            conn.execute(f'CREATE DATABASE "{name}"')
        # A session left open in a database of the dead run does not prevent the drop.
        lingering = psycopg.connect(url.replace("/postgres", "/cr_dead01_gw0_1"))
        done = drop_run_databases({"kind": "external-postgres", "url": url, "prefix": "cr_dead01_"})
        assert "dropped 2 database(s)" in done
        assert SECRET not in done
        names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        assert {"cr_alive2_gw0_1", "teamdata"} <= names
        assert not {"cr_dead01_gw0_1", "cr_dead01_template"} & names
        lingering.close()
        for name in ("cr_alive2_gw0_1", "teamdata"):
            conn.execute(f'DROP DATABASE "{name}"')


def test_redis_url_gives_the_first_database_index(team_redis: RedisServer) -> None:
    url = team_redis.url(7)
    server = connect_redis(url, "CLEANROOM_REDIS_URL", 10)
    assert (server.provider, server.port, server.db_base) == ("external", team_redis.port, 7)
    assert server.password == team_redis.password
    assert server.databases == team_redis.databases
    assert server.client(7).ping()


@pytest.mark.parametrize("auth", [":wrong-Pass-1@", ""], ids=["wrong-password", "no-password"])
def test_redis_bad_credentials_are_named_without_the_password(
    team_redis: RedisServer, auth: str
) -> None:
    url = f"redis://{auth}127.0.0.1:{team_redis.port}/0"
    with pytest.raises(ServiceStartError, match="refused the credentials") as info:
        connect_redis(url, "CLEANROOM_REDIS_URL", 10)
    assert "wrong-Pass-1" not in str(info.value)
    assert "check the password in the URL" in str(info.value)


def test_redact_hides_passwords() -> None:
    assert redact("postgresql://u:p%40ss@h:1/d") == "postgresql://u:***@h:1/d"
    assert redact("redis://:pw@h:1/0") == "redis://:***@h:1/0"
    assert redact("redis://h:1/0") == "redis://h:1/0"
