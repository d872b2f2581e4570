"""Helper processes that act the moment this process is gone, however it went (even SIGKILL).

:func:`start_once` starts ``python -m MODULE ARGS...`` holding the read end of a pipe whose
write end only this process holds: the helper's :func:`wait_for_owner` returns when the pipe
reaches end of file, that is when this process has ended. The cgroup and docker reapers use it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Sequence

_lock = threading.Lock()
#: module -> (pid it was started for, write end kept open, the process): a forked child starts
#: its own; the process object is referenced so that it is never collected (and warned about).
_started: dict[str, tuple[int, int, subprocess.Popen[bytes]]] = {}


def start_once(module: str, args: Sequence[str]) -> None:
    """Start ``python -m module args...`` for this process unless it runs already. Without it
    (the helper cannot start) nothing changes: the next process's sweep remains."""
    with _lock:
        known = _started.get(module)
        if known is not None and known[0] == os.getpid():
            return
        read_end, write_end = os.pipe()  # neither end is inherited across exec
        try:
            helper = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C meant for the engine must not reach it
            )
        except OSError:
            os.close(write_end)
            return
        finally:
            os.close(read_end)
        if known is not None:
            os.close(known[1])  # the parent's, inherited by this forked child
        # Kept open for the process's lifetime: the kernel closes it when the process ends.
        _started[module] = (os.getpid(), write_end, helper)


def is_running(module: str) -> bool:
    """Whether this process's helper ``module`` runs."""
    with _lock:
        known = _started.get(module)
    return known is not None and known[0] == os.getpid() and known[2].poll() is None


def wait_for_owner() -> None:
    """In the helper: return once the process that started it has ended."""
    try:
        while os.read(0, 4096):  # nothing is ever written: this returns at end of file
            pass
    except OSError:
        pass
