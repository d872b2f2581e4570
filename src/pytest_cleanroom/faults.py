"""Crash points for the crash-consistency tests: ``<SWITCH>_CRASH_AT=N`` makes the process kill
itself with SIGKILL at the N-th crash point it passes (``<SWITCH>_CRASH_TRACE=1`` prints each
point's name on stderr). ``GGEN_MARKET`` and ``GGEN_LIFECYCLE`` are the switches in use. Unset, a
crash point costs one dictionary lookup."""

from __future__ import annotations

import os
import sys
from _thread import allocate_lock

_counts: dict[str, int] = {}
_lock = allocate_lock()


def crash_point(name: str, switch: str) -> None:
    """Die here, as ``kill -9`` would, if this is the point the environment names."""
    target = os.environ.get(f"{switch}_CRASH_AT")
    if not target:
        return
    with _lock:
        count = _counts[switch] = _counts.get(switch, 0) + 1
        if os.environ.get(f"{switch}_CRASH_TRACE"):
            sys.stderr.write(f"crash point {count}: {name}\n")
            sys.stderr.flush()
        if target.isdigit() and count == int(target):
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
