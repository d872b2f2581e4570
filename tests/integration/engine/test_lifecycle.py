"""Nothing is left behind: timeout, daemons, close() from another thread, the engine killed.

(A real Ctrl-C is tried by tests/security/test_limits_and_robustness.py, on every backend.)"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, RunResult
from pytest_cleanroom.testing.leftovers import (
    MARKER_VARIABLE,
    busy_cgroups_of_process,
    cgroups_of_process,
    processes_with_marker,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def _wait_for(predicate: object, what: str, limit: float = 30.0) -> None:
    end = time.monotonic() + limit
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize("policy", ["standard", "permissive"])
def test_timeout_kills_background_children_too(tmp_path: Path, backend: str, policy: str) -> None:
    marker = uuid.uuid4().hex
    with Cleanroom(tmp_path, policy=policy, backend=backend) as room:
        result = room.run(
            "sleep 300 & sleep 300 & (sleep 300 &) ; wait",
            timeout=1,
            env={MARKER_VARIABLE: marker},
        )
    assert result.timed_out
    assert processes_with_marker(marker) == []
    assert busy_cgroups_of_process(os.getpid()) == []


@pytest.mark.parametrize("policy", ["standard", "permissive"])
def test_daemon_left_by_a_finished_command_is_killed(
    tmp_path: Path, backend: str, policy: str
) -> None:
    marker = uuid.uuid4().hex
    with Cleanroom(tmp_path, policy=policy, backend=backend) as room:
        result = room.run(
            "setsid sh -c 'sleep 300' </dev/null >/dev/null 2>&1 & echo started",
            env={MARKER_VARIABLE: marker},
        )
    result.assert_success().assert_stdout_contains("started")
    assert processes_with_marker(marker) == []


def test_close_from_another_thread_kills_the_running_command(tmp_path: Path, backend: str) -> None:
    marker = uuid.uuid4().hex
    results: list[RunResult] = []
    room = Cleanroom(tmp_path, backend=backend)
    worker = threading.Thread(
        target=lambda: results.append(
            room.run("sleep 300 & sleep 300", env={MARKER_VARIABLE: marker})
        )
    )
    worker.start()
    _wait_for(lambda: len(processes_with_marker(marker)) >= 2, "the command to start")
    room.close()
    worker.join(30)
    assert not worker.is_alive()
    (result,) = results
    assert result.exit_code == 137
    assert "cleanroom was closed" in result.stderr
    assert processes_with_marker(marker) == []


KILLED_SCRIPT = f"""
import sys
from pytest_cleanroom import Cleanroom
room = Cleanroom(sys.argv[1], backend=sys.argv[2])
room.run("sleep 300 & sleep 300", env={{"{MARKER_VARIABLE}": sys.argv[3]}})
"""


def test_engine_killed_outright_takes_the_sandbox_with_it(tmp_path: Path, backend: str) -> None:
    """SIGKILL leaves the engine no chance to clean up: the sandbox dies with its parent, and
    the next engine process sweeps the dead one's cgroups.

    The kill lands as soon as the sandbox's first processes exist, often while bubblewrap is
    still setting up, before its child has asked to die with its parent (about one run in
    fifteen left a sandbox behind until cgroup_reaper): several rounds make that window likely.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    for round_ in range(5):
        marker = uuid.uuid4().hex
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLED_SCRIPT, str(tmp_path / f"a{round_}"), backend, marker],
            env=env,
        )
        _wait_for(lambda m=marker: len(processes_with_marker(m)) >= 2, "the command to start")
        proc.kill()
        proc.wait()
        _wait_for(lambda m=marker: not processes_with_marker(m), "the sandbox to die with it")
        # Each process sweeps for at most cgroups.SWEEP_BUDGET seconds and leaves the rest to
        # the next one: on a loaded machine with other engines' leftovers, one may not do.
        sweep = "from pytest_cleanroom import cgroups; cgroups.parents(); cgroups.join_sweep()"
        for _ in range(10):
            subprocess.run([sys.executable, "-c", sweep], env=env, check=True)
            if not cgroups_of_process(proc.pid):
                break
        assert cgroups_of_process(proc.pid) == []
