"""Phases run through the cleanroom engine, with real PostgreSQL and Redis started for them."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import uuid
from pathlib import Path

import pytest

from pytest_cleanroom.testing.leftovers import processes_with_marker
from tests.conftest import require_binary
from tests.unit.lifecycle.helpers import write_project

from .conftest import RunFn, start, wait_for

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
        workspaces=["app"],
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


SLEEPER = """
[lifecycle.slow]
command = "sleep 60 & touch started; wait; touch finished"
env = {{ CLEANROOM_PROBE_MARKER = "{marker}" }}
[lifecycle.slow.cleanroom]
enabled = true
[lifecycle.bad]
command = "until [ -f started ]; do sleep 0.02; done; exit 3"
timeout = 60
[lifecycle.ci]
command = "true"
depends_on = ["slow", "bad"]
"""


def test_fail_fast_stops_a_sibling_cleanroom_phase_and_its_tree(
    run_project: RunFn, tmp_path: Path
) -> None:
    require_binary("bwrap", "apt-get install bubblewrap")
    marker = uuid.uuid4().hex
    ran = run_project(SLEEPER.format(marker=marker), ["ci"], jobs=2)
    assert ran.summary.status == "failed", ran.output
    assert ran.statuses == {"bad": "failed", "slow": "cancelled", "ci": "skipped"}
    slow = ran.result("slow")
    assert "stopped because another task failed" in (slow.error or "")
    # Only guards against a hang: without the cancel, the sleeper would run its full 60 s.
    assert slow.duration < 30
    assert processes_with_marker(marker) == []
    assert not (tmp_path / "proj" / "finished").exists()
    tasks = json.loads((tmp_path / "proj" / ".ggen" / "state.json").read_text())["tasks"]
    assert {t["phase"]: t["result"] for t in tasks} == {"bad": "failed", "slow": "cancelled"}


def test_sigint_stops_a_running_cleanroom_phase(tmp_path: Path) -> None:
    require_binary("bwrap", "apt-get install bubblewrap")
    marker = uuid.uuid4().hex
    root = write_project(
        tmp_path,
        f"""
        [lifecycle.slow]
        command = "sleep 60 & touch started; wait"
        env = {{ CLEANROOM_PROBE_MARKER = "{marker}" }}
        [lifecycle.slow.cleanroom]
        enabled = true
        """,
    )
    proc = start(root, "run", "slow")
    wait_for(root / "started", proc)
    assert processes_with_marker(marker)  # the sandboxed sleep runs
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in out
    assert processes_with_marker(marker) == []
    state = json.loads((root / ".ggen" / "state.json").read_text())
    assert state["runs"][-1]["result"] == "interrupted"
    assert [t["result"] for t in state["tasks"]] == ["interrupted"]
