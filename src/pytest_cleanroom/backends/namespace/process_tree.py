"""Start a sandbox launcher, feed and drain its streams, watch its limits, kill its whole tree.

:func:`supervise` is the one place where local backends run a process. It never leaves anything
behind: on normal exit, timeout, a limit breach, :meth:`LiveProcess.cancel` (from another thread)
and ``KeyboardInterrupt`` alike, every process of the command is killed and reaped before it
returns or re-raises.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import resource
import select
import shlex
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol

from ...cgroups import RunCgroup
from .._handoff import LAUNCHER_ENV
from ..base import (
    LIMIT_CPU_TIME,
    LIMIT_MEMORY,
    LIMIT_OUTPUT,
    LIMIT_PROCESSES,
    LIMIT_TIMEOUT,
    CappedStream,
    output_cut_message,
)
from ._spawner import in_fresh_keyring
from .limits import Rlimits, exit_code_of

#: How often a running command's cgroup counters are read (seconds).
TICK = 0.02
#: After the main process exited, how long leftover holders of its pipes get before they are
#: killed, and before the rest of what they write is no longer waited for.
LEFTOVER_GRACE = 0.05
DRAIN_GRACE = 2.0
_READ_SIZE = 1 << 20
#: What a command's output pipes hold (set where they are made, or once found full).
PIPE_ROOM = _READ_SIZE
#: A pipe's default capacity: a read this long found it full.
_PIPE_SIZE = 1 << 16
#: What the init of a command entering a warm sandbox writes: its exit code (see _nsinit.c).
_STATUS = struct.Struct("=i")

LAUNCHER_MARK = b"cleanroom-launcher:"


@dataclass(frozen=True)
class Outcome:
    """What :func:`supervise` observed."""

    exit_code: int
    stdout: bytes
    stderr: bytes
    duration: float
    started_at: float
    timed_out: bool
    limit_exceeded: str | None
    peak_memory: int | None
    cpu_time: float | None
    cancelled: bool
    #: The status came from the command's init, which killed and reaped every other process
    #: of the command first: nothing of it is left.
    reported: bool = False


class Process(Protocol):
    """A launcher this process is the parent of, with a pipe per standard stream: a
    :class:`subprocess.Popen`, or a :class:`ServedProcess` forked by the launcher server."""

    pid: int
    returncode: int | Any
    stdin: IO[bytes] | None
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class ServedProcess:
    """A launcher the launcher server forked as this process's own child (see
    ``backends/namespace/launcher_server.py``), and this process's ends of its pipes."""

    def __init__(self, pid: int, stdin: int, stdout: int, stderr: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stdin: IO[bytes] | None = os.fdopen(stdin, "wb", buffering=0)
        self.stdout: IO[bytes] | None = os.fdopen(stdout, "rb", buffering=0)
        self.stderr: IO[bytes] | None = os.fdopen(stderr, "rb", buffering=0)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status, _ = _wait4(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            _, status, _ = _wait4(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class LiveProcess:
    """A running command; :meth:`cancel` kills its tree from any thread."""

    def __init__(self, proc: Process, cgroup: RunCgroup | None) -> None:
        self.proc = proc
        self.cgroup = cgroup
        self.cancelled = threading.Event()
        self._kill_lock = threading.Lock()

    def kill_tree(self) -> None:
        with self._kill_lock:
            if self.cgroup is not None:
                self.cgroup.kill()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def cancel(self) -> None:
        self.cancelled.set()
        self.kill_tree()


def launcher_argv(
    argv: Sequence[str],
    cgroup: RunCgroup | None,
    rlimits: Rlimits,
    fd_files: Mapping[int, str] | None = None,
    *,
    confine: bool = True,
) -> list[str]:
    """``argv`` preceded, where needed, by a ``/bin/sh`` that joins the cgroups (every
    hierarchy's with ``confine``, see :meth:`RunCgroup.join_files`), sets the rlimits and opens
    ``fd_files`` (descriptor number -> file to read), then ``exec``s it (so no extra process
    stays around)."""
    joins = cgroup.join_files(confine=confine) if cgroup is not None else []
    ulimits = rlimits.ulimit_commands()
    if not joins and not ulimits and not fd_files:
        return list(argv)
    steps = [f'echo 0 >"${{{i + 1}}}"' for i in range(len(joins))] + ulimits
    script = (
        (
            " && ".join(steps)
            + f' || {{ echo "{LAUNCHER_MARK.decode()} cannot join cgroups or set rlimits" >&2;'
            + " exit 125; }\n"
            if steps
            else ""
        )
        + (f"shift {len(joins)}\n" if joins else "")
        + 'exec "$@"'
        + fd_redirections(fd_files)
    )
    return ["/bin/sh", "-c", script, "sh", *joins, *argv]


def fd_redirections(fd_files: Mapping[int, str] | None) -> str:
    """Shell redirections opening each file of ``fd_files`` for reading at its number (0-9:
    dash reads ``10<file`` as an argument ``10`` and a redirection of stdin)."""
    if any(not 0 <= fd <= 9 for fd in (fd_files or {})):
        raise ValueError(f"descriptor numbers must be single digits: {sorted(fd_files or {})}")
    return "".join(f" {fd}<{shlex.quote(path)}" for fd, path in (fd_files or {}).items())


def start(argv: Sequence[str], *, pass_fds: Sequence[int] = ()) -> Started:
    """Start ``argv`` (already wrapped by :func:`launcher_argv`) in a session of its own, with a
    pipe for each standard stream, and a fresh, empty session keyring (see :mod:`._spawner`).
    Launchers run in the host's namespaces: they get the fixed :data:`LAUNCHER_ENV`, never the
    command's environment (which goes through :mod:`.backends._handoff`)."""
    started_at = time.time()
    t0 = time.monotonic()
    proc = in_fresh_keyring(
        lambda: subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(LAUNCHER_ENV),
            close_fds=True,
            pass_fds=tuple(pass_fds),
            start_new_session=True,
        ),
        _abandon,
    )
    return Started(proc, t0, started_at)


def _abandon(proc: Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    _reap(proc)
    _close_pipes(proc)


@dataclass(frozen=True)
class Started:
    """A process :func:`supervise` can watch, and when the command it runs began; ``status``:
    a pipe the init of a command entering a warm sandbox writes its exit status to."""

    proc: Process
    t0: float
    started_at: float
    status: int | None = None


def supervise(
    started: Started,
    *,
    stdin: bytes | None,
    timeout: float | None,
    cgroup: RunCgroup | None,
    cpu_limit: float | None,
    max_output: int | None = None,
    on_start: Callable[[LiveProcess], None] | None = None,
    on_end: Callable[[LiveProcess], None] | None = None,
) -> Outcome:
    """Feed, drain and watch a started command to completion (or kill it: timeout, limits,
    :meth:`LiveProcess.cancel`, ``KeyboardInterrupt``). Each stream keeps at most
    ``max_output`` bytes: past it the command is killed (``limit_exceeded="output"``) and the
    rest is read and dropped, so that host memory stays bounded whatever it prints."""
    proc, t0, started_at = started.proc, started.t0, started.started_at
    if len(_pending) > PENDING_AT_MOST:  # else reaped by the launcher preparer's thread
        reap_done()  # earlier commands' launchers, gone since
    live = LiveProcess(proc, cgroup)
    if on_start is not None:
        on_start(live)
    try:
        watch = _Watch(live, stdin, timeout, cpu_limit, t0, max_output, started.status)
        status, rusage = watch.loop()
    except BaseException:
        live.kill_tree()
        _reap(proc)
        _close_pipes(proc)
        raise
    finally:
        if on_end is not None:
            on_end(live)
    duration = time.monotonic() - t0
    if not watch.reported:  # else closed as the launcher is reaped (off this thread)
        _close_pipes(proc)

    peak_memory: int | None = None
    cpu_time: float | None = None
    limit = watch.kill_reason if watch.kill_reason != "cancel" else None
    if cgroup is not None:
        usage = cgroup.usage()
        peak_memory, cpu_time = usage.peak_memory, usage.cpu_time
        if limit is None:
            if usage.oom_kills:
                limit = LIMIT_MEMORY
            elif usage.pids_max_hits:
                limit = LIMIT_PROCESSES
            elif cpu_limit is not None and cpu_time is not None and cpu_time > cpu_limit:
                limit = LIMIT_CPU_TIME
    elif rusage is not None:
        peak_memory = rusage.ru_maxrss * 1024
        cpu_time = rusage.ru_utime + rusage.ru_stime
    return Outcome(
        exit_code=exit_code_of(os.waitstatus_to_exitcode(status)),
        stdout=watch.out.take(),
        stderr=watch.err.take(output_cut_message(max_output) if limit == LIMIT_OUTPUT else b""),
        duration=duration,
        started_at=started_at,
        timed_out=watch.kill_reason == LIMIT_TIMEOUT,
        limit_exceeded=limit,
        peak_memory=peak_memory,
        cpu_time=cpu_time,
        cancelled=live.cancelled.is_set(),
        reported=watch.reported,
    )


class _Watch:
    """The poll loop of one command: streams, exit (or its init's report), deadline, cgroup
    counters.

    A command entering a warm sandbox has its exit status reported by its init, which keeps
    the command's stdout and stderr open until then: the report is the one wake-up such a
    command costs, and what it wrote is read then (all of its processes are gone). Its streams
    are watched only from the first tick on (a command still running then may fill them)."""

    def __init__(
        self,
        live: LiveProcess,
        stdin: bytes | None,
        timeout: float | None,
        cpu_limit: float | None,
        t0: float,
        max_output: int | None = None,
        status_fd: int | None = None,
    ) -> None:
        self.live = live
        self.status_fd = -1 if status_fd is None else status_fd
        self.proc = live.proc
        self.stdin = memoryview(stdin) if stdin else None
        self.deadline = t0 + timeout if timeout is not None else None
        self.cpu_limit = cpu_limit
        self.out = CappedStream(max_output)
        self.err = CappedStream(max_output)
        self.kill_reason: str | None = None
        self.reported = False  # the status came from the command's init
        self._poller = select.poll()
        self._sinks: dict[int, CappedStream] = {}
        self._watching_streams = False
        self._grown: set[int] = set()
        self._stdin_fd = -1
        self._pidfd = -1

    def _kill(self, reason: str) -> None:
        if self.kill_reason is None:
            self.kill_reason = reason
        self.live.kill_tree()

    def _check_limits(self) -> None:
        cgroup = self.live.cgroup
        if cgroup is None or self.kill_reason is not None:
            return
        if cgroup.oom_kills():
            self._kill(LIMIT_MEMORY)
        elif cgroup.pids_max_hits():
            self._kill(LIMIT_PROCESSES)
        elif self.cpu_limit is not None:
            used = cgroup.cpu_time()
            if used is not None and used > self.cpu_limit:
                self._kill(LIMIT_CPU_TIME)

    def loop(self) -> tuple[int, resource.struct_rusage | None]:
        proc = self.proc
        assert proc.stdout is not None
        assert proc.stderr is not None
        self._sinks = {proc.stdout.fileno(): self.out, proc.stderr.fileno(): self.err}
        if self.stdin is not None and proc.stdin is not None:
            self._stdin_fd = proc.stdin.fileno()
            os.set_blocking(self._stdin_fd, False)
            self._poller.register(self._stdin_fd, select.POLLOUT)
        else:
            _close(proc.stdin)  # no input: the command reads end-of-file at once
        try:
            if self.status_fd >= 0:
                self._poller.register(self.status_fd, select.POLLIN)
            else:
                self._watch_exit()
            status, rusage = self._wait()
            self._stop_feeding()
            self._drain()
            if self.reported:
                _reap_later(proc)  # exits once the command's namespaces are torn down
            else:
                proc.returncode = os.waitstatus_to_exitcode(status)
            return status, rusage
        finally:
            for fd in (self._pidfd, self.status_fd):
                if fd >= 0:
                    os.close(fd)
            self._pidfd = self.status_fd = -1

    def _wait(self) -> tuple[int, resource.struct_rusage | None]:
        """Feed and drain the command until its status is known (reported or reaped)."""
        monitoring = self.live.cgroup is not None
        next_check = time.monotonic() + TICK  # counters are read once a tick, not on each wake-up
        while True:
            now = time.monotonic()
            ticking = monitoring or not self._watching_streams or self._polls_exit()
            for fd, event in self._poller.poll(self._wait_ms(now, ticking, next_check)):
                if fd == self.status_fd:
                    code = self._on_status()
                    if code is not None:
                        return code << 8, None  # as a normal exit with code
                elif fd == self._pidfd:
                    _, status, rusage = self._on_exit(0)
                    return status, rusage
                elif fd == self._stdin_fd:
                    if not self._feed(fd):
                        self._stop_feeding()
                elif fd in self._sinks:
                    self._on_output(fd, event)
            now = time.monotonic()
            due = now >= next_check
            if due:
                next_check = now + TICK
                self._watch_streams()  # still running: what it writes is read as it comes
            if self._polls_exit():
                pid, status, rusage = self._on_exit(os.WNOHANG)
                if pid:
                    return status, rusage
            if self.live.cancelled.is_set():
                self._kill("cancel")
            elif self.deadline is not None and now >= self.deadline:
                self._kill(LIMIT_TIMEOUT)
            elif monitoring and due:
                self._check_limits()

    def _polls_exit(self) -> bool:
        """Whether the launcher's exit is found by asking (no pidfd, no report to wait for)."""
        return self._pidfd < 0 and self.status_fd < 0

    def _wait_ms(self, now: float, ticking: bool, next_tick: float) -> float | None:
        candidates: list[float] = []
        if ticking:
            candidates.append(min(TICK, max(0.0, next_tick - now)))
        if self.deadline is not None:
            candidates.append(max(0.0, self.deadline - now))
        return min(candidates) * 1000 if candidates else None

    def _on_status(self) -> int | None:
        """The code the command's init reported; ``None`` (nothing reported: the launcher ran
        a sandbox tool, or the init was killed): the launcher's exit is watched instead."""
        code = _read_status(self.status_fd)
        self._poller.unregister(self.status_fd)
        os.close(self.status_fd)
        self.status_fd = -1
        if code is not None:
            self.reported = True
        else:
            self._watch_exit()
        return code

    def _watch_exit(self) -> None:
        self._watch_streams()
        self._pidfd = _pidfd(self.proc.pid)
        if self._pidfd >= 0:
            self._poller.register(self._pidfd, select.POLLIN)

    def _on_exit(self, options: int) -> tuple[int, int, resource.struct_rusage | None]:
        """``wait4`` the launcher (with ``options``); once it is gone, its pidfd is closed."""
        pid, status, rusage = _wait4(self.proc.pid, options)
        if pid and self._pidfd >= 0:
            self._poller.unregister(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = -1
        return pid, status, rusage

    def _watch_streams(self) -> None:
        if not self._watching_streams:
            self._watching_streams = True
            for fd in self._sinks:
                self._poller.register(fd, select.POLLIN)

    def _on_output(self, fd: int, event: int) -> None:
        # Hung up with nothing left to read: its end, without a read to say so.
        data = os.read(fd, _READ_SIZE) if event & select.POLLIN else b""
        if not data:
            self._poller.unregister(fd)
            del self._sinks[fd]
            return
        if len(data) >= _PIPE_SIZE and fd not in self._grown:  # it was full: make room
            self._grown.add(fd)
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_ROOM)
        if self._sinks[fd].add(data):
            self._kill(LIMIT_OUTPUT)

    def _stop_feeding(self) -> None:
        if self._stdin_fd >= 0:
            self._poller.unregister(self._stdin_fd)
            self._stdin_fd = -1
            _close(self.proc.stdin)

    def _drain(self) -> None:
        """Read what the command wrote until its streams end. After its init's report, only
        what they hold (every process of the command is gone); after the launcher's exit,
        until leftover holders of the streams close them: they are killed once
        :data:`LEFTOVER_GRACE` passed; after :data:`DRAIN_GRACE` the rest is not waited for."""
        self._watch_streams()
        exited_at = time.monotonic()
        leftovers_killed = self.reported
        while self._sinks:
            now = time.monotonic()
            if now - exited_at >= DRAIN_GRACE:
                return
            if not leftovers_killed and now - exited_at > LEFTOVER_GRACE:
                self.live.kill_tree()  # something else still holds the streams: the tree must go
                leftovers_killed = True
            wait = 0.0 if self.reported else min(LEFTOVER_GRACE, DRAIN_GRACE - (now - exited_at))
            events = self._poller.poll(wait * 1000)
            if not events and self.reported:
                return  # all it wrote is read
            for fd, event in events:
                if fd in self._sinks:
                    self._on_output(fd, event)

    def _feed(self, fd: int) -> bool:
        """Write more of stdin; False once all of it is written or the reader went away."""
        assert self.stdin is not None
        try:
            written = os.write(fd, self.stdin[: 1 << 16])
        except BlockingIOError:
            return True
        except (BrokenPipeError, OSError):
            return False
        self.stdin = self.stdin[written:]
        return len(self.stdin) > 0


def _read_status(fd: int) -> int | None:
    """The exit code the command's init wrote (0-255, 128 + N after signal N), or ``None``:
    it wrote none (it was killed, or the launcher ran a sandbox tool, closing the pipe)."""
    try:
        data = os.read(fd, _STATUS.size)
    except OSError:
        return None
    if len(data) != _STATUS.size:
        return None
    (code,) = _STATUS.unpack(data)
    return int(code) & 0xFF


_pending_lock = threading.Lock()
_pending: list[Process] = []  # launchers that outlived their command's result
#: Launchers left to reap before a command's own thread reaps them (the launcher preparer's
#: thread does it off the commands' way: see prepared.py).
PENDING_AT_MOST = 8


def _reap_later(proc: Process) -> None:
    """Keep ``proc`` (tearing its command's namespaces down) and its pipes until it can be
    reaped."""
    with _pending_lock:
        _pending.append(proc)


def reap_done() -> bool:
    """Reap the launchers of :func:`_reap_later` that are gone, and close this process's ends
    of their command's pipes (every writer gone: all they held was read); True if none is
    left."""
    with _pending_lock:
        gone = [proc for proc in _pending if proc.poll() is not None]
        _pending[:] = [proc for proc in _pending if proc.returncode is None]
    for proc in gone:
        _close_pipes(proc)
    return not _pending


def wait_for_launchers(deadline: float = 10.0) -> bool:
    """Wait until every launcher that outlived its command's result (its namespaces being torn
    down) is gone and reaped; False if ``deadline`` passed first."""
    end = time.monotonic() + deadline
    while not reap_done():
        if time.monotonic() > end:
            return False
        time.sleep(0.002)
    return True


def _after_fork_in_child() -> None:
    with _pending_lock:
        _pending.clear()  # the parent's launchers are the parent's children


os.register_at_fork(after_in_child=_after_fork_in_child)


def _pidfd(pid: int) -> int:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return -1


def _wait4(pid: int, options: int) -> tuple[int, int, resource.struct_rusage | None]:
    while True:
        try:
            got, status, rusage = os.wait4(pid, options)
        except InterruptedError:
            continue
        except ChildProcessError:
            return pid, 0, None
        return got, status, rusage


def _reap(proc: Process) -> None:
    if proc.returncode is None:
        _, status, _ = _wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)


def _close(stream: object) -> None:
    close = getattr(stream, "close", None)
    if close is not None:
        with contextlib.suppress(OSError):
            close()


def _close_pipes(proc: Process) -> None:
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        _close(stream)
