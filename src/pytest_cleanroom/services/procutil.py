"""Process identity and termination that never hits an unrelated process with a reused pid."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from ..owner import is_alive as is_alive
from ..owner import start_token as start_token


def process_cwd(pid: int) -> Path | None:
    """The working directory of ``pid`` (Linux), used to confirm a server's identity."""
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def wait_gone(pid: int, token: str | None, timeout: float) -> bool:
    """Poll until ``pid`` has exited (reaping it if it is our child); False on timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        _reap(pid)
        if not is_alive(pid, token):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def terminate_group(pid: int, token: str | None, sig: int, grace: float) -> bool:
    """Send ``sig`` to the process group led by ``pid``, then SIGKILL it after ``grace`` seconds.

    Servers are started in their own session, so the group holds the server and its children.
    Nothing is sent unless ``pid`` still carries ``token``. Returns True once the leader is gone.
    """
    if not is_alive(pid, token):
        _reap(pid)
        return True
    for signum in (sig, signal.SIGKILL):
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            return True
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
        # SIGKILL goes to the whole group at once, so no child outlives its leader.
        if wait_gone(pid, token, grace if signum == sig else 10.0):
            return True
    return False
