"""A cancel or a timeout landing as a command starts from a sandbox entered ahead ends all of it.

The command's launcher entered the warm sandbox before the command came; the command is handed
to it and ``Cleanroom.cancel()`` (or the command's timeout) lands at once, or a few
milliseconds later: while it is being claimed, started, or just running. Its whole tree must be
gone when its result is returned, the result must say why it ended, and the next command (from
the next sandbox entered ahead) must find nothing it left in ``/tmp`` or ``/dev/shm``.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, RunResult
from pytest_cleanroom.testing.leftovers import MARKER_VARIABLE, processes_with_marker
from tests.security.backends import (
    LOCAL_BACKENDS,
    entering_ahead,
    wait_for_a_sandbox_entered_ahead,
)

pytestmark = pytest.mark.integration

# Leaves a file in /tmp and /dev/shm and a background process, then waits.
STAY = "echo x > /tmp/left; echo x > /dev/shm/left; sleep 60 & sleep 60"
LOOK = "ls -A /tmp /dev/shm"
EMPTY = "/dev/shm:\n\n/tmp:\n"


def run_in_a_thread(room: Cleanroom, marker: str) -> tuple[threading.Thread, list[RunResult]]:
    """Start :data:`STAY` with ``marker`` in a thread; its result lands in the list."""
    results: list[RunResult] = []

    def work() -> None:
        results.append(room.run(STAY, env={MARKER_VARIABLE: marker}))

    worker = threading.Thread(target=work)
    worker.start()
    return worker, results


@pytest.mark.parametrize("level", ["standard", "strict", "locked"])
@pytest.mark.parametrize("name", LOCAL_BACKENDS)
def test_a_cancel_or_timeout_as_a_warm_command_starts_ends_all_of_it(
    tmp_path: Path, name: str, level: str
) -> None:
    with (
        entering_ahead(name, level) as backend,
        Cleanroom(tmp_path / "ws", policy=level, backend=backend, seed=1, timeout=60) as room,
    ):
        room.run(["true"]).assert_success()
        for delay in (0.0, 0.005, 0.02):
            marker = uuid.uuid4().hex
            wait_for_a_sandbox_entered_ahead(backend)
            worker, results = run_in_a_thread(room, marker)
            time.sleep(delay)
            while not room.cancel():  # until it caught the command (it may not run yet)
                time.sleep(0.0005)
            worker.join(60)
            (cancelled,) = results
            assert (cancelled.cancelled, cancelled.exit_code) == (True, 137), cancelled.stderr
            assert processes_with_marker(marker) == []
            wait_for_a_sandbox_entered_ahead(backend)
            after = room.run(LOOK)
            assert (after.exit_code, after.stdout) == (0, EMPTY), after.stderr

            wait_for_a_sandbox_entered_ahead(backend)
            timed = room.run(STAY, timeout=0.001 + delay, env={MARKER_VARIABLE: marker})
            assert (timed.timed_out, timed.exit_code) == (True, 137), timed.stderr
            assert processes_with_marker(marker) == []
            wait_for_a_sandbox_entered_ahead(backend)
            after = room.run(LOOK)
            assert (after.exit_code, after.stdout) == (0, EMPTY), after.stderr
