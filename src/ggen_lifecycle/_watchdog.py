"""A small process that ends a run's task process groups when the run's process dies.

A task's shell is started through ``setpriv --pdeathsig KILL``, so the kernel kills it when the
runner goes, however it went (SIGKILL, the OOM killer). What the shell started in the background
would live on: the watchdog holds the read end of a pipe on which the runner announces each task
process group (``+PGID``) and its end (``-PGID``); when the pipe closes (the runner exited or was
killed) it SIGKILLs every group still announced. A process that left its task's group (``setsid``)
escapes both; where cgroups work it is still in its task's cgroup, which the engine's cgroup
reaper empties (see :mod:`.task_cgroup`).

The watchdog runs as ``python -I -S -c`` (no site packages, a few milliseconds to start) and only
once a run starts its first command: a run of cache hits never starts one.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: a run of cache hits starts no process
    import subprocess

WATCHDOG = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
groups = set()
for line in sys.stdin.buffer:
    try:
        sign, pgid = line[:1], int(line[1:])
    except ValueError:
        continue
    if sign == b"+":
        groups.add(pgid)
    elif sign == b"-":
        groups.discard(pgid)
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


@functools.cache
def launcher() -> list[str]:
    """What to put before ``/bin/sh -c COMMAND`` so that the shell dies with this process."""
    import shutil

    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


class Watchdog:
    """The watchdog of one run, started on the first :meth:`add`; :meth:`close` ends it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pipe: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._failed = False

    def add(self, pgid: int) -> None:
        self._send(b"+%d\n" % pgid)

    def discard(self, pgid: int) -> None:
        self._send(b"-%d\n" % pgid)

    def _send(self, message: bytes) -> None:
        with self._lock:
            if self._pipe is None and not self._failed:
                self._start()
            if self._pipe is not None:
                try:
                    os.write(self._pipe, message)
                except OSError:  # the watchdog is gone: the pdeathsig still holds
                    self._failed = True
                    os.close(self._pipe)
                    self._pipe = None

    def _start(self) -> None:
        import subprocess

        read_end, write_end = os.pipe()  # neither end is inherited by the tasks
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", WATCHDOG],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C at the terminal is for the runner, not for it
            )
        except OSError:
            os.close(write_end)
            self._failed = True
            return
        finally:
            os.close(read_end)
        self._pipe = write_end

    def close(self) -> None:
        """Close the pipe (the watchdog kills what is still announced, then exits) and reap it."""
        with self._lock:
            if self._pipe is not None:
                os.close(self._pipe)
                self._pipe = None
            process, self._process = self._process, None
        if process is not None:
            import subprocess

            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
