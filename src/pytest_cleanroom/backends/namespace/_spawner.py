"""Every sandbox launcher is forked by a long-lived thread, in a fresh kernel session keyring.

A process inherits its parent's session keyring, and namespaces do not isolate keyrings: a
command forked straight from the engine would hold the engine's session keyring (the keys of a
CI service, of an ssh login with ``pam_keyinit``). Session keyrings belong to a thread's
credentials, so this thread joins a new, empty, anonymous one before forking each launcher: every
command gets a keyring of its own, and the engine's other threads keep theirs. (The seccomp
filter also refuses the keyring calls inside the sandbox; this makes the keyring it holds empty.)

A long-lived thread also keeps ``--die-with-parent`` meaningful: the parent-death signal
follows the thread that forked, so that thread must live as long as the process. That is the
spawner thread here, or a thread that lives as long and forks its launchers itself (the one
making launchers ahead of time, see :func:`spawn_here`).
"""

from __future__ import annotations

import ctypes
import errno
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from ...errors import SandboxError

T = TypeVar("T")

_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "riscv64": 219, "ppc64le": 310, "s390x": 280}
_KEYCTL_JOIN_SESSION_KEYRING = 1

_libc = ctypes.CDLL(None, use_errno=True)


def join_fresh_session_keyring() -> None:
    """Make the calling thread's session keyring a new, empty, anonymous one."""
    number = _SYS_KEYCTL.get(os.uname().machine)
    if number is None:
        raise SandboxError(
            f"cannot give the command a session keyring of its own on {os.uname().machine}: "
            "the keyctl call number is unknown here; use the docker backend"
        )
    if _libc.syscall(number, _KEYCTL_JOIN_SESSION_KEYRING, None) >= 0:
        return
    err = ctypes.get_errno()
    if err == errno.ENOSYS:
        return  # a kernel without keyrings: there is nothing to inherit
    raise SandboxError(
        f"cannot give the command a session keyring of its own: {os.strerror(err)} "
        "(kernel.keys.maxkeys reached? raise it with sysctl)"
    )


class _Spawner:
    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], object], Future[object]]] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._work, name="cleanroom-spawner", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            fn, future = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                join_fresh_session_keyring()
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

    def call(self, fn: Callable[[], T], abandon: Callable[[T], None]) -> T:
        future: Future[object] = Future()
        self._jobs.put((fn, future))
        try:
            result: T = future.result()  # type: ignore[assignment]
        except BaseException:
            # Interrupted (Ctrl-C) while the thread forked: what it made has no owner now.
            future.add_done_callback(
                lambda done: None if done.exception() else abandon(done.result())  # type: ignore[arg-type]
            )
            raise
        return result


_lock = threading.Lock()
_spawner: tuple[int, _Spawner] | None = None
_here = threading.local()


def spawn_here() -> None:
    """Let the calling thread, which must live as long as the process (as the spawner thread
    does), fork launchers itself: no hand-over to the spawner thread."""
    _here.pid = os.getpid()


def in_fresh_keyring(fn: Callable[[], T], abandon: Callable[[T], None]) -> T:
    """``fn()`` called on the spawner thread (or a thread marked by :func:`spawn_here`) right
    after it joined a fresh session keyring; ``abandon`` gets its result if the caller is
    interrupted before it could take it."""
    global _spawner
    if getattr(_here, "pid", None) == os.getpid():
        join_fresh_session_keyring()
        return fn()
    with _lock:
        if _spawner is None or _spawner[0] != os.getpid():
            _spawner = (os.getpid(), _Spawner())
        spawner = _spawner[1]
    return spawner.call(fn, abandon)
