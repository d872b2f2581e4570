"""A suite pointed at servers the team already runs: nothing started, nothing of theirs touched."""

from __future__ import annotations

import pytest

from pytest_cleanroom.services.postgres import PostgresServer
from pytest_cleanroom.services.redis import RedisServer
from tests.integration.services.test_external import (  # noqa: F401 (fixtures)
    SECRET,
    team_postgres,
    team_redis,
)

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("runtime_dir")]

TESTS = """
import os, pytest

@pytest.mark.parametrize("n", range(6))
def test_use(postgres, redis, postgres_server, request, n):
    assert postgres_server.provider == "external" and postgres.user == "team"
    with postgres.connect() as conn:
        conn.execute("CREATE TABLE t (x int)")
    client = redis.client()
    assert client.dbsize() == 0
    client.set("k", n)
    worker = getattr(request.config, "workerinput", {"workerid": "gw0"})["workerid"]
    assert redis.db == 3 + int(worker[2:])
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_external_servers_are_used_and_left_as_found(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    team_postgres: PostgresServer,  # noqa: F811
    team_redis: RedisServer,  # noqa: F811
    workers: list[str],
) -> None:
    monkeypatch.setenv(
        "CLEANROOM_POSTGRES_URL",
        f"postgresql://team:{SECRET}@127.0.0.1:{team_postgres.port}/postgres",
    )
    monkeypatch.setenv("CLEANROOM_REDIS_URL", team_redis.url(3))
    team_redis.client(0).set("team-data", "precious")
    with team_postgres.connect() as conn:
        before = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    pytester.makepyfile(TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *workers)
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [
            "cleanroom services: postgres=external (auto: URL from CLEANROOM_POSTGRES_URL); "
            "redis=external (auto: URL from CLEANROOM_REDIS_URL)*"
        ]
    )
    assert SECRET not in result.stdout.str()
    with team_postgres.connect() as conn:
        after = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
    assert after == before  # every test database and the template were dropped
    assert team_redis.client(0).get("team-data") == b"precious"
    assert team_redis.client(3).dbsize() == 0
    assert team_redis.client(4).dbsize() == 0
