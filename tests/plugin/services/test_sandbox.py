"""A sandboxed command reaches the test's services through their sockets, only when allowed."""

from __future__ import annotations

import shutil

import pytest

from pytest_cleanroom.services.binaries import find_postgres
from tests.conftest import require, require_binary

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("binaries", "runtime_dir")]


@pytest.fixture
def clients() -> tuple[str, str]:
    require_binary("bwrap", "apt-get install bubblewrap")
    pg = find_postgres()
    require(pg is not None and (pg.bin_dir / "psql").exists(), "psql (apt-get install postgresql)")
    assert pg is not None
    redis_cli = shutil.which("redis-cli")
    require(redis_cli is not None, "redis-cli (apt-get install redis-tools)")
    assert redis_cli is not None
    return str(pg.bin_dir / "psql"), redis_cli


def test_isolated_network_still_reaches_allowed_services_through_their_sockets(
    pytester: pytest.Pytester, clients: tuple[str, str]
) -> None:
    psql, redis_cli = clients
    pytester.makepyfile(
        f"""
        import pytest

        PSQL = {psql!r}
        REDIS_CLI = {redis_cli!r}

        @pytest.mark.cleanroom(network="isolated")
        def test_allowed(cleanroom, postgres, redis):
            with postgres.connect() as conn:
                conn.execute("CREATE TABLE orders (id int)")
                conn.execute("INSERT INTO orders VALUES (7)")
            result = cleanroom.run([PSQL, "-Atc", "SELECT current_database(), id FROM orders"])
            result.assert_success()
            assert result.stdout.strip() == f"{{postgres.dbname}}|7"
            result = cleanroom.run(
                ["sh", "-c", REDIS_CLI + ' -s "$REDIS_SOCKET" -n "$REDIS_DB" set k from-sandbox']
            )
            result.assert_success()
            assert redis.client().get("k") == b"from-sandbox"
            # The network itself stays isolated: TCP to the same server fails.
            tcp = cleanroom.run(
                [PSQL, "-h", "127.0.0.1", "-p", str(postgres.port), "-Atc", "SELECT 1"]
            )
            assert tcp.exit_code != 0

        @pytest.mark.cleanroom(network="isolated", allowed_services=["redis"])
        def test_not_allowed(cleanroom, postgres, redis):
            direct = [PSQL, "-h", postgres.unix_socket_dir, "-p", str(postgres.port),
                      "-U", postgres.user, "-d", postgres.dbname, "-Atc", "SELECT 1"]
            denied = cleanroom.run(direct)
            assert denied.exit_code != 0
            assert "PGHOST" not in cleanroom.run(["env"]).stdout
            allowed = cleanroom.run(["sh", "-c", REDIS_CLI + ' -s "$REDIS_SOCKET" ping'])
            allowed.assert_success()
            assert allowed.stdout.strip() == "PONG"

        @pytest.mark.cleanroom(network="isolated", allowed_services=[])
        def test_nothing_allowed(cleanroom, redis):
            sock = redis.unix_socket
            denied = cleanroom.run([REDIS_CLI, "-s", sock, "ping"])
            assert denied.exit_code != 0 or "PONG" not in denied.stdout
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
