"""A time limit for CPU-bound work that cannot be bounded up front, such as a regular expression
that backtracks catastrophically (``(a+)+$``): Python's ``re`` checks for signals while it
matches, so a ``SIGALRM`` interrupts it.

Only the main thread receives signals, and one interval timer serves the process: elsewhere, or
inside another limit, :func:`time_limit` imposes none (the outer one still holds).

Once the limit is reached the alarm repeats every :data:`REPEAT` seconds until the block is left:
code that catches every exception (a query engine evaluating an expression) may swallow the first
one and carry on.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

REPEAT = 0.5


class DeadlineExceededError(TimeoutError):
    """The block ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`DeadlineExceededError` inside the block once it has run ``seconds``."""
    usable = threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGALRM")
    if not usable or signal.getitimer(signal.ITIMER_REAL)[0] != 0:  # another's (pytest-timeout)
        yield
        return

    def fire(signum: int, frame: object) -> None:
        raise DeadlineExceededError(f"ran past its limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
