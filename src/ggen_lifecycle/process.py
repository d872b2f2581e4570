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

    from pytest_cleanroom.cgroups import RunCgroup

TAIL_LINES = 40
MAX_LINE = 64 * 1024  # a longer line is passed on in pieces of this size
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL


class CommandTree:
    """The processes of one command: its process group and, where cgroups work, its cgroup,
    which also holds the processes that left the group (``setsid``, double forks)."""

    def __init__(
        self,
        pgid: int,
        cgroup: RunCgroup | None = None,
        leader: subprocess.Popen[bytes] | None = None,
    ) -> None:
        self.pgid = pgid
        self.cgroup = cgroup
        #: the group's first process, if it is our child: reaped while waiting, since a zombie
        #: still counts as a member of its process group
        self.leader = leader

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)
        group = self.cgroup  # read once: release() may clear it meanwhile
        for pid in group.pids() if group is not None else []:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def alive(self) -> bool:
        """Whether any process of the command is left."""
        if self.leader is not None:
            self.leader.poll()
        group = self.cgroup
        if group is not None and group.pids():
            return True
        try:
            os.killpg(self.pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def kill(self, grace: float = KILL_GRACE) -> None:
        """SIGTERM every process of the command, then SIGKILL whatever is left after ``grace``."""
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not self.alive():
                return
            time.sleep(0.02)
        self.kill_now()

    def kill_now(self) -> None:
        """SIGKILL every process of the command (its cgroup frozen first, where there is one)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signal.SIGKILL)
        group = self.cgroup
        if group is not None and group.pids():
            group.kill()

    def release(self) -> None:
        """Give the cgroup back (what is still in it is killed) once the command is over.

        The tree forgets it: a finished group is reused by a later command, which a kill still
        running for this one (a grace period, a cancel) must never reach."""
        group, self.cgroup = self.cgroup, None
        if group is not None:
            group.release()


class Cancellable(Protocol):
    """Something running commands that can stop them all (a cleanroom)."""

    def cancel(self) -> object: ...


class ProcessTable:
    """The commands and cleanrooms alive right now, so that a failure or Ctrl-C can kill them
    all. ``uncontained`` says why some command had no cgroup (``None``: every one had)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._trees: set[CommandTree] = set()
        self._rooms: set[Cancellable] = set()
        self.watchdog = Watchdog()  # kills the groups if this process dies first
        self.commands = 0
        self.uncontained: str | None = None

    def add(self, tree: CommandTree) -> None:
        with self._lock:
            self._trees.add(tree)
            self.commands += 1
        self.watchdog.add(tree.pgid)

    def note_uncontained(self, why: str) -> None:
        """Remember why a command runs without a cgroup (the first reason is kept)."""
        with self._lock:
            if self.uncontained is None:
                self.uncontained = why

    def discard(self, tree: CommandTree) -> None:
        with self._lock:
            self._trees.discard(tree)
        self.watchdog.discard(tree.pgid)

    @property
    def cleanup(self) -> str | None:
        """How the run's commands were killed: ``cgroup``, ``process group: WHY``, or ``None``
        when no command ran."""
        if not self.commands:
            return None
        return "cgroup" if self.uncontained is None else f"process group: {self.uncontained}"

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
            trees = list(self._trees)
            rooms = list(self._rooms)
        threads = [threading.Thread(target=t.kill, args=(grace,)) for t in trees]
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
    what is left in its group if this process is killed (see :mod:`._watchdog`). Where cgroups
    work the shell runs in a cgroup of its own (see :mod:`.task_cgroup`), which every kill
    below covers too, and whose reaper ends it if this process is killed.

    Lines go to ``log`` and ``on_line`` as they come. On timeout every process of the command is
    killed; when the run is cancelled, whoever sets ``cancelled`` kills the trees in ``table``.
    When the shell exits, what it left running is killed too, so that nothing outlives its task.
    """
    started = _start_shell(command, cwd, env, table)
    if isinstance(started, str):
        log.write(started.encode() + b"\n")
        on_line(started.encode() + b"\n")
        return Outcome(exit_code=127, tail=[started])
    tree = started
    proc = tree.leader
    assert proc is not None
    assert proc.stdout is not None
    state = {"timed_out": False}

    def on_timeout() -> None:
        state["timed_out"] = True
        tree.kill()

    timer = threading.Timer(timeout, on_timeout) if timeout is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    if cancelled.is_set():  # cancelled before we were registered: the canceller missed us
        threading.Thread(target=tree.kill, daemon=True).start()

    def watch() -> None:
        # A blocking wait notices the exit at once (Popen.wait(timeout) polls every 50 ms).
        proc.wait()
        if timer is not None:
            timer.cancel()
        tree.kill_now()  # background leftovers would keep the pipe open (and outlive the task)

    watcher = threading.Thread(target=watch, name=f"watch-{tree.pgid}", daemon=True)
    watcher.start()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    total = 0
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
        tree.kill()
        raise
    finally:
        proc.stdout.close()
        watcher.join()
        table.discard(tree)
        tree.release()
    failed = proc.returncode != 0
    return Outcome(
        exit_code=proc.returncode,
        timed_out=state["timed_out"],
        cancelled=failed and not state["timed_out"] and cancelled.is_set(),
        tail=list(tail),
        bytes_out=total,
    )


def _start_shell(
    command: str, cwd: Path, env: Mapping[str, str], table: ProcessTable
) -> CommandTree | str:
    """The started shell's tree, registered in ``table`` (and in its cgroup) before it runs
    ``command``; or why it could not start."""
    import subprocess  # here: a run whose tasks are all cache hits never needs it

    from . import task_cgroup

    cgroup, why = task_cgroup.create()
    # The shell waits for a line on ``go`` (sent once it is in its cgroup and registered with
    # the table and the watchdog) before it runs the command: a run killed right after the fork
    # leaves nothing, and nothing the command starts can be outside its cgroup.
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
        if cgroup is not None:
            cgroup.release()
        return f"cannot start /bin/sh in {cwd}: {exc}"
    finally:
        os.close(go_read)
    if cgroup is not None:
        why = task_cgroup.join(cgroup, proc.pid)
        cgroup = None if why else cgroup
    if cgroup is None:
        table.note_uncontained(why)
    tree = CommandTree(proc.pid, cgroup, leader=proc)
    table.add(tree)
    with contextlib.suppress(OSError):  # a shell already gone (killed) cannot be told to go
        os.write(go_write, b"\n")
    os.close(go_write)
    return tree
