"""A suite served by containers: chosen on purpose or by ``auto``, removed at the end."""

from __future__ import annotations

import pytest

from pytest_cleanroom.services.binaries import find_postgres
from tests.conftest import require
from tests.integration.services.conftest import docker_client

from .test_reporting import without_binaries

pytest_plugins = ("pytester",)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.docker,
    pytest.mark.usefixtures("need_docker", "runtime_dir"),
]

TESTS = """
import os, pytest

PSQL = {psql!r}

@pytest.mark.parametrize("n", range(4))
def test_use(postgres, redis, postgres_server, redis_server, n):
    assert postgres_server.provider == redis_server.provider == "docker"
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
"""


def our_containers() -> set[str]:
    """Service containers (role postgres or redis) on the engine. The docker backend's
    per-command containers, which tests on another xdist worker may be running at the same
    moment, carry no such role; the provider's own tests (runs ``dk*``) are left out too."""
    client = docker_client()
    try:
        return {
            c.id
            for role in ("postgres", "redis")
            for c in client.containers.list(
                all=True, filters={"label": f"io.cleanroom.role={role}"}
            )
            if not c.name.startswith("cleanroom-dk")
        }
    finally:
        client.close()


def test_docker_provider_serves_xdist_workers_and_leaves_no_container(
    pytester: pytest.Pytester,
) -> None:
    binaries = find_postgres()
    psql = binaries.bin_dir / "psql" if binaries else None
    require(psql is not None and psql.exists(), "psql (apt-get install postgresql)")
    pytester.makefile(".sql", schema="CREATE TABLE seeded (x int); INSERT INTO seeded VALUES (1);")
    pytester.makeini("[pytest]\ncleanroom_postgres_template = schema.sql\n")
    pytester.makepyfile(TESTS.format(psql=str(psql)))
    before = our_containers()
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--cleanroom-services=docker"
    )
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        ["cleanroom services: postgres=docker (--cleanroom-services=docker: Docker engine answers*"]
    )
    assert our_containers() - before == set()


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
    before = our_containers()
    result = without_binaries(pytester)
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
    assert our_containers() - before == set()
