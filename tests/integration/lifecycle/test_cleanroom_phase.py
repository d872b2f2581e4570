"""Phases run through the cleanroom engine, with real PostgreSQL and Redis started for them."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

import pytest

from tests.conftest import require_binary

from .conftest import RunFn

pytestmark = pytest.mark.integration


def test_cleanroom_phase_is_sandboxed(
    run_project: RunFn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_binary("bwrap", "apt-get install bubblewrap")
    monkeypatch.setenv("GGEN_TEST_HOST_SECRET", "leaked")
    ran = run_project(
        """
[env]
DECLARED = "yes"
[workspace.app]
path = "app"
[lifecycle.test]
commands = [
  "echo pwd=$(pwd) declared=$DECLARED host=${GGEN_TEST_HOST_SECRET:-unset} ws=$GGEN_WORKSPACE",
  "ls /root | wc -l > root-entries.txt",
  "echo made > result.txt",
]
[lifecycle.test.cleanroom]
enabled = true
policy = "standard"
""",
        ["test"],
        {"app/.keep": ""},
    )
    assert ran.summary.status == "success", ran.output
    assert "app:test | pwd=/workspace declared=yes host=unset ws=app" in ran.output
    app = tmp_path / "proj" / "app"
    assert (app / "result.txt").read_text() == "made\n"
    assert (app / "root-entries.txt").read_text().strip() == "0"  # /root is hidden


def test_cleanroom_failure_carries_the_exit_code(run_project: RunFn) -> None:
    require_binary("bwrap", "apt-get install bubblewrap")
    ran = run_project(
        '[lifecycle.test]\ncommand = "exit 7"\ncleanroom = { enabled = true }\n', ["test"]
    )
    result = ran.result("test")
    assert result.status == "failed"
    assert result.exit_code == 7
    assert "exited with code 7" in (result.error or "")


def test_cleanroom_phase_gets_its_services(run_project: RunFn, tmp_path: Path) -> None:
    require_binary("bwrap", "apt-get install bubblewrap")
    require_binary("psql", "apt-get install postgresql-client")
    require_binary("redis-cli", "apt-get install redis-tools")
    ran = run_project(
        """
[lifecycle.test]
commands = [
  "echo port=$PGPORT socket=$REDIS_SOCKET db=$PGDATABASE",
  "psql \\"$DATABASE_URL\\" -v ON_ERROR_STOP=1 -Atc 'create table t (x int)'",
  "psql \\"$DATABASE_URL\\" -Atc 'insert into t values (41); select x+1 from t'",
  "redis-cli -s $REDIS_SOCKET -n $REDIS_DB set greeting hello > /dev/null",
  "redis-cli -s $REDIS_SOCKET -n $REDIS_DB get greeting",
]
[lifecycle.test.cleanroom]
enabled = true
services = ["postgres", "redis"]
""",
        ["test"],
    )
    assert ran.summary.status == "success", ran.output
    assert "test | 42" in ran.output
    assert "test | hello" in ran.output
    found = re.search(r"port=(\d+) socket=(\S+) db=(\S+)", ran.output)
    assert found, ran.output
    # the servers were started for this run and are gone after it
    with socket.socket() as probe:
        probe.settimeout(2)
        with pytest.raises(ConnectionRefusedError):
            probe.connect(("127.0.0.1", int(found.group(1))))
    assert not os.path.exists(found.group(2))


def test_service_refused_by_the_policy(run_project: RunFn) -> None:
    require_binary("bwrap", "apt-get install bubblewrap")
    require_binary("redis-server", "apt-get install redis-server")
    ran = run_project(
        """
[lifecycle.test]
command = "true"
[lifecycle.test.cleanroom]
enabled = true
policy = { level = "standard", allowed_services = ["postgres"] }
services = ["redis"]
""",
        ["test"],
    )
    result = ran.result("test")
    assert result.status == "failed"
    assert "service 'redis' is not allowed by cleanroom policy" in (result.error or "")
