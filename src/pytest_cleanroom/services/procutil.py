"""Process identity and termination that never hits an unrelated process with a reused pid."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def start_token(pid: int) -> str | None:
    """Something that changes when ``pid`` is reused: its start time. ``None`` if it is gone."""
    if sys.platform.startswith("linux"):
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        fields = raw[raw.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            return None  # a zombie has already exited
        return fields[19]  # field 22 of stat: start time in clock ticks since boot
    try:
        out = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def is_alive(pid: int, token: str | None = None) -> bool:
    """True when ``pid`` runs and, if ``token`` is given, is still the same process."""
    if pid <= 0:
        return False
    current = start_token(pid)
    if current is None:
        return False
    return token is None or current == token


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
