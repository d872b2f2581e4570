"""The inter-process lock that guards ``.ggen`` and the registry caches."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path


class LockTimeoutError(Exception):
    """Another process held the lock for longer than the timeout."""


@contextlib.contextmanager
def exclusive_lock(path: Path, timeout: float | None = None) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) between processes.

    ``flock(2)`` on POSIX, the same lock the ``filelock`` package takes there, so both exclude
    each other; ``filelock`` itself elsewhere (it costs ~10-20 ms to import, which the ``ggen``
    commands on Linux save). :class:`LockTimeoutError` after ``timeout`` seconds (``None``: wait).
    """
    try:
        import fcntl
    except ImportError:  # Windows
        from filelock import FileLock, Timeout

        try:
            with FileLock(str(path), timeout=-1 if timeout is None else timeout):
                yield
        except Timeout:
            raise LockTimeoutError(str(path)) from None
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if deadline is None else fcntl.LOCK_NB))
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise LockTimeoutError(str(path)) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
