"""Fixture factories: servers with other settings (and template extensions) are other servers,
shared like the plain ones (PostgreSQL: one per run; Redis: one per worker), at -n 0 and -n 2."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("binaries", "runtime_dir")]

CONFTEST = """
from pytest_cleanroom.services import factories

postgres_stats = factories.postgres(
    settings={"shared_preload_libraries": "pg_stat_statements", "max_connections": 150},
    extensions=["pg_stat_statements", "pg_trgm"],
)
redis_lru = factories.redis(settings={"maxmemory": "2mb", "maxmemory-policy": "allkeys-lru"})
"""

TESTS = """
import json
import os

import pytest


def record(kind, port):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "master")
    with open(os.environ["SEEN"], "a") as fh:
        fh.write(json.dumps([kind, worker, port]) + "\\n")


@pytest.mark.parametrize("n", range(3))
def test_plain(postgres, redis, n):
    with postgres.connect() as conn:
        assert conn.execute("SHOW max_connections").fetchone() == ("200",)
        assert conn.execute("SELECT count(*) FROM pg_extension").fetchone() == (1,)  # plpgsql
    assert redis.client().config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    record("postgres", postgres.port)
    record("redis", redis.port)


@pytest.mark.parametrize("n", range(3))
def test_with_settings(postgres_stats, redis_lru, n):
    with postgres_stats.connect() as conn:
        assert conn.execute("SHOW max_connections").fetchone() == ("150",)
        assert conn.execute("SELECT similarity('cleanroom', 'cleanroom')").fetchone() == (1.0,)
        conn.execute("CREATE TABLE seen (n int)")  # a database of its own, like postgres
        conn.execute("SELECT count(*) FROM pg_stat_statements").fetchone()
    client = redis_lru.client()
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    client.config_set("maxmemory-policy", "volatile-ttl")  # put back to allkeys-lru afterwards
    record("postgres_stats", postgres_stats.port)
    record("redis_lru", redis_lru.port)
"""


@pytest.mark.parametrize("workers", ["0", "2"])
def test_servers_with_other_settings(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, workers: str
) -> None:
    seen = pytester.path / "seen.jsonl"
    monkeypatch.setenv("SEEN", str(seen))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_settings=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", workers)
    result.assert_outcomes(passed=6)
    rows = [json.loads(line) for line in seen.read_text().splitlines()]
    ports: dict[str, set[int]] = {}
    for kind, worker, port in rows:
        ports.setdefault(kind, set()).add(port)
        ports.setdefault(f"{kind}@{worker}", set()).add(port)
    # One server per run for each PostgreSQL configuration, shared by the workers...
    assert len(ports["postgres"]) == 1
    assert len(ports["postgres_stats"]) == 1
    assert ports["postgres"] != ports["postgres_stats"]
    # ... and one Redis server per worker for each configuration.
    workers_seen = {worker for _, worker, _ in rows}
    for worker in workers_seen:
        plain, lru = ports.get(f"redis@{worker}"), ports.get(f"redis_lru@{worker}")
        if plain and lru:
            assert plain != lru


def test_bad_factory_settings_name_the_fix(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        "from pytest_cleanroom.services import factories\n"
        "redis_odd = factories.redis(settings={'port': 1234})\n"
    )
    pytester.makepyfile(test_one="def test_one():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*factories.redis(settings=...): 'port' is set by the plugin*"])


def test_ini_redis_settings(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncleanroom_redis_settings =\n    maxmemory-policy = allkeys-lfu\n")
    pytester.makepyfile(
        test_one="def test_one(redis):\n"
        "    policy = redis.client().config_get('maxmemory-policy')\n"
        "    assert policy == {'maxmemory-policy': 'allkeys-lfu'}\n"
    )
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
