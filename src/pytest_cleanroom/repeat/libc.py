"""The C library, loaded once, for the system calls Python does not wrap (inotify, mount)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def libc() -> ctypes.CDLL | None:
    """libc with ``errno`` kept for :func:`ctypes.get_errno`; ``None`` where it cannot load."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
