"""``ggen lifecycle run`` killed outright (SIGKILL): its tasks' processes end with it, the
background ones included."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.unit.lifecycle.helpers import alive, write_project

from .conftest import start, wait_for

pytestmark = pytest.mark.integration

SERVE = """
[lifecycle.serve]
command = "sleep 300 & echo $! > background.pid; echo $$ > shell.pid; wait"
"""


def gone_within(pids: list[int], limit: float = 30) -> list[int]:
    """The pids still alive after waiting up to ``limit`` seconds (the kill is asynchronous)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        living = [pid for pid in pids if alive(pid)]
        if not living:
            return []
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


@pytest.mark.parametrize("workspaces", [(), ("a", "b")], ids=["root", "two-workspaces"])
def test_sigkill_of_the_runner_ends_its_tasks(tmp_path: Path, workspaces: tuple[str, ...]) -> None:
    root = write_project(tmp_path, SERVE, workspaces=workspaces)
    proc = start(root, "run", "serve", "-j", "2")
    directories = [root / w for w in workspaces] or [root]
    pid_files = [d / name for d in directories for name in ("shell.pid", "background.pid")]
    try:
        for pid_file in pid_files:
            wait_for(pid_file, proc, whole_line=True)
        pids = [int(pid_file.read_text()) for pid_file in pid_files]
        assert all(alive(pid) for pid in pids)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        assert gone_within(pids) == []
    finally:
        if proc.poll() is None:
            proc.kill()
