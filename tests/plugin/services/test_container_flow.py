"""A suite served by containers on each engine: chosen on purpose or by ``auto``, shared by the
xdist workers, reached from a sandbox through its socket, removed at the end."""

from __future__ import annotations

from pathlib import Path

import docker  # noqa: F401  (loaded before pytester snapshots sys.modules)
import pytest

from pytest_cleanroom.services.binaries import find_postgres
from pytest_cleanroom.services.engines import DOCKER, PODMAN, ContainerEngine
from pytest_cleanroom.services.registry import read_json
from tests.conftest import require, require_binary
from tests.integration.services.conftest import docker_client, require_engine

from .test_reporting import without_binaries

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("runtime_dir")]

TESTS = """
import os, pytest

PSQL = {psql!r}

@pytest.mark.parametrize("n", range(4))
def test_use(postgres, redis, postgres_server, redis_server, n):
    assert postgres_server.provider == redis_server.provider == {engine!r}
    with postgres.connect() as conn:
        assert conn.execute("SELECT count(*) FROM seeded").fetchone() == (1,)
        conn.execute("DROP TABLE seeded")
    assert redis.client().dbsize() == 0
    redis.client().set("k", n)

@pytest.mark.cleanroom(network="isolated")
def test_sandbox_reaches_the_container_through_its_socket(cleanroom, postgres):
    result = cleanroom.run([PSQL, "-Atc", "SELECT count(*) FROM seeded"])
    result.assert_success()
    assert result.stdout.strip() == "1"

@pytest.mark.cleanroom(network="isolated")
def test_sandbox_reaches_redis_through_its_socket(cleanroom, redis):
    redis.client().set("k", "seen")
    result = cleanroom.run(["sh", "-c", 'redis-cli -s "$REDIS_SOCKET" -n "$REDIS_DB" GET k'])
    result.assert_success()
    assert result.stdout.strip() == "seen"
    denied = cleanroom.run(["sh", "-c", 'redis-cli -s "$REDIS_SOCKET" CONFIG SET maxmemory 1mb'])
    assert "NOPERM" in denied.stdout + denied.stderr

@pytest.mark.cleanroom(network="isolated", allowed_services=["redis"])
def test_a_sandbox_without_postgres_in_its_policy_cannot_reach_it(cleanroom, postgres):
    result = cleanroom.run([PSQL, "-Atc", "SELECT 1"])
    assert result.exit_code != 0
    assert "PGHOST" not in cleanroom.run(["env"]).stdout
"""


def assert_removed(engine: ContainerEngine, basetemp: Path, started: int) -> None:
    """The containers the finished run started (named in its stopped state files) are gone from
    the engine. Other tests' containers, which may come and go meanwhile on the shared engine,
    do not count."""
    import docker.errors

    states = [read_json(path) for path in basetemp.glob("cleanroom-services/*.stopped")]
    names = [state["handle"]["name"] for state in states if state]
    assert len(names) == started, names
    client = docker_client(engine)
    try:
        for name in names:
            with pytest.raises(docker.errors.NotFound):
                client.containers.get(name)
    finally:
        client.close()


def test_the_container_provider_serves_xdist_workers_and_leaves_no_container(
    engine: ContainerEngine, pytester: pytest.Pytester
) -> None:
    # ``engine`` first: the docker SDK it imports must not be among the modules that pytester
    # removes again after the test (a later import of requests would then break the SDK's).
    binaries = find_postgres()
    psql = binaries.bin_dir / "psql" if binaries else None
    require(psql is not None and psql.exists(), "psql (apt-get install postgresql)")
    require_binary("redis-cli", "apt-get install redis-tools")
    pytester.makefile(".sql", schema="CREATE TABLE seeded (x int); INSERT INTO seeded VALUES (1);")
    pytester.makeini(
        f"[pytest]\ncleanroom_postgres_template = schema.sql\ncleanroom_services = {engine.name}\n"
    )
    pytester.makepyfile(TESTS.format(psql=str(psql), engine=engine.name))
    basetemp = pytester.path / "run"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", f"--basetemp={basetemp}"
    )
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(
        [
            f"cleanroom services: postgres={engine.name} (ini cleanroom_services={engine.name}: "
            f"{engine.title} answers*"
        ]
    )
    assert_removed(engine, basetemp, 3)  # postgres, and a redis for each worker


@pytest.mark.docker
@pytest.mark.usefixtures("need_docker")
def test_auto_falls_back_to_docker_when_binaries_are_missing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_use(postgres, redis):
            assert postgres.server.provider == "docker"
            with postgres.connect() as conn:
                conn.execute("CREATE TABLE t (x int)")
            redis.client().set("k", "v")

        def test_fails(postgres):
            with postgres.connect() as conn:
                conn.execute("SELECT * FROM nosuch_in_docker")
        """
    )
    basetemp = pytester.path / "run"
    result = without_binaries(pytester, f"--basetemp={basetemp}")
    result.assert_outcomes(passed=1, failed=1)
    # The failing test's report carries the container's log.
    result.stdout.fnmatch_lines(
        [
            "*- cleanroom postgres server log (since the test began) -*",
            '*ERROR:  relation "nosuch_in_docker" does not exist*',
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "cleanroom services: postgres=docker (auto: no postgres binaries; Docker engine "
            "answers at *); redis=docker (auto: no redis binaries; Docker engine answers at *)*"
        ]
    )
    assert_removed(DOCKER, basetemp, 2)


@pytest.mark.podman
def test_auto_falls_back_to_podman_without_binaries_and_docker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    require_engine(PODMAN)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    pytester.makepyfile(
        """
        def test_use(postgres, redis):
            assert postgres.server.provider == redis.server.provider == "podman"
            with postgres.connect() as conn:
                conn.execute("CREATE TABLE t (x int)")
            redis.client().set("k", "v")
        """
    )
    basetemp = pytester.path / "run"
    result = without_binaries(pytester, f"--basetemp={basetemp}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "cleanroom services: postgres=podman (auto: no postgres binaries; Podman service "
            "answers at *); redis=podman (auto: no redis binaries; Podman service answers at *)*"
        ]
    )
    assert_removed(PODMAN, basetemp, 2)
