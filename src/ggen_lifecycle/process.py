"""Running one shell command: its own session, output streamed line by line, whole-tree kills.

A command's output is never held in memory: every line goes to the task's log file and to a
callback (the terminal), and only the last lines are kept, for error messages.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from ._watchdog import Watchdog, launcher

if TYPE_CHECKING:
    import subprocess

TAIL_LINES = 40
MAX_LINE = 64 * 1024  # a longer line is passed on in pieces of this size
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL


def kill_tree(
    pgid: int, grace: float = KILL_GRACE, leader: subprocess.Popen[bytes] | None = None
) -> None:
    """SIGTERM the process group ``pgid``, then SIGKILL whatever is left after ``grace``.

    ``leader`` (the group's first process, if it is our child) is reaped while waiting, since a
    zombie still counts as a member of its group.
    """
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if leader is not None:
            leader.poll()
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Cancellable(Protocol):
    """Something running commands that can stop them all (a cleanroom)."""

    def cancel(self) -> object: ...


class ProcessTable:
    """The process groups and cleanrooms alive right now, so that a failure or Ctrl-C can kill
    them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        self._rooms: set[Cancellable] = set()
        self.watchdog = Watchdog()  # kills the groups if this process dies first

    def add(self, pgid: int) -> None:
        with self._lock:
            self._groups.add(pgid)
        self.watchdog.add(pgid)

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._groups.discard(pgid)
        self.watchdog.discard(pgid)

    def close(self) -> None:
        """End the watchdog (at the end of a run, when no group is left)."""
        self.watchdog.close()

    def add_room(self, room: Cancellable) -> None:
        with self._lock:
            self._rooms.add(room)

    def discard_room(self, room: Cancellable) -> None:
        with self._lock:
            self._rooms.discard(room)

    def kill_all(self, grace: float = KILL_GRACE) -> None:
        """Kill every registered tree and cancel every cleanroom's commands (in parallel, so
        that the grace period is paid once)."""
        with self._lock:
            groups = list(self._groups)
            rooms = list(self._rooms)
        threads = [threading.Thread(target=kill_tree, args=(g, grace)) for g in groups]
        threads += [threading.Thread(target=room.cancel) for room in rooms]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


@dataclass
class Outcome:
    """How a command ended. ``exit_code`` is negative for a signal, as in :mod:`subprocess`."""

    exit_code: int
    timed_out: bool = False
    cancelled: bool = False
    tail: list[str] = field(default_factory=list)
    bytes_out: int = 0


def run_shell(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    log: BinaryIO,
    on_line: Callable[[bytes], None],
    table: ProcessTable,
    cancelled: threading.Event,
    timeout: float | None = None,
) -> Outcome:
    """Run ``command`` with ``/bin/sh -c`` in a new session; stdout and stderr are merged.

    The shell dies with this process (``setpriv --pdeathsig``), and the run's watchdog kills
    what is left in its group if this process is killed (see :mod:`._watchdog`).

    Lines go to ``log`` and ``on_line`` as they come. On timeout the whole process group is
    killed; when the run is cancelled, whoever sets ``cancelled`` kills the groups in ``table``.
    When the shell exits, what it left running in its group is killed too, so that nothing
    outlives its task.
    """
    import subprocess  # here: a run whose tasks are all cache hits never needs it

    tail: deque[str] = deque(maxlen=TAIL_LINES)
    # The shell waits for a line on ``go`` (sent once its group is registered with the table and
    # the watchdog) before it runs the command: a run killed right after the fork leaves nothing.
    go_read, go_write = os.pipe()
    # (on stdin: dash redirects only descriptors 0 to 9; the command gets /dev/null as before)
    gate = 'read -r _ || exit 1; exec </dev/null; exec /bin/sh -c "$0"'
    try:
        proc = subprocess.Popen(
            [*launcher(), "/bin/sh", "-c", gate, command],
            cwd=cwd,
            env=dict(env),
            stdin=go_read,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        os.close(go_write)
        message = f"cannot start /bin/sh in {cwd}: {exc}"
        log.write(message.encode() + b"\n")
        on_line(message.encode() + b"\n")
        return Outcome(exit_code=127, tail=[message])
    finally:
        os.close(go_read)
    pgid = proc.pid
    table.add(pgid)
    with contextlib.suppress(OSError):  # a shell already gone (killed) cannot be told to go
        os.write(go_write, b"\n")
    os.close(go_write)
    state = {"timed_out": False}

    def on_timeout() -> None:
        state["timed_out"] = True
        kill_tree(pgid, leader=proc)

    timer = threading.Timer(timeout, on_timeout) if timeout is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    if cancelled.is_set():  # cancelled before we were registered: the canceller missed us
        threading.Thread(target=kill_tree, args=(pgid,), daemon=True).start()

    def watch() -> None:
        # A blocking wait notices the exit at once (Popen.wait(timeout) polls every 50 ms).
        proc.wait()
        if timer is not None:
            timer.cancel()
        # Background leftovers would keep the pipe open (and outlive the task): end them.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)

    watcher = threading.Thread(target=watch, name=f"watch-{pgid}", daemon=True)
    watcher.start()
    total = 0
    assert proc.stdout is not None
    try:
        while True:
            chunk = proc.stdout.readline(MAX_LINE)
            if not chunk:
                break
            total += len(chunk)
            log.write(chunk)
            tail.append(chunk.decode("utf-8", errors="replace").rstrip("\n"))
            on_line(chunk)
    except BaseException:  # Ctrl-C in the thread reading: the command must not outlive us
        kill_tree(pgid, leader=proc)
        raise
    finally:
        proc.stdout.close()
        watcher.join()
        table.discard(pgid)
    failed = proc.returncode != 0
    return Outcome(
        exit_code=proc.returncode,
        timed_out=state["timed_out"],
        cancelled=failed and not state["timed_out"] and cancelled.is_set(),
        tail=list(tail),
        bytes_out=total,
    )
