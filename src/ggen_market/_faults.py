"""Fault injection for the crash tests: ``GGEN_MARKET_CRASH_AT=N`` makes the process kill itself
with SIGKILL at the N-th crash point of a transaction (``GGEN_MARKET_CRASH_TRACE=1`` prints each
point's name on stderr). Unset, a crash point costs one dictionary lookup."""

from __future__ import annotations

import os
import signal
import sys

_count = 0


def crash_point(name: str) -> None:
    """Die here, like ``kill -9`` would, if this is the point the environment names."""
    global _count
    target = os.environ.get("GGEN_MARKET_CRASH_AT")
    if not target:
        return
    _count += 1
    if os.environ.get("GGEN_MARKET_CRASH_TRACE"):
        sys.stderr.write(f"crash point {_count}: {name}\n")
        sys.stderr.flush()
    if target.isdigit() and _count == int(target):
        os.kill(os.getpid(), signal.SIGKILL)
