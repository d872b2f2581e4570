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
import selectors
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
#: After the main process exited, how long leftover holders of its pipes get before we give up.
DRAIN_GRACE = 2.0
_READ_SIZE = 1 << 20
_F_SETPIPE_SZ = 1031
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
    _reap_done()  # earlier commands' launchers, gone since
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
    )


class _Watch:
    """The select loop of one command: streams, exit, deadline, cgroup counters."""

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
        sel = selectors.DefaultSelector()
        sinks = {proc.stdout.fileno(): self.out, proc.stderr.fileno(): self.err}
        for fd in sinks:
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, _F_SETPIPE_SZ, _READ_SIZE)
            sel.register(fd, selectors.EVENT_READ)
        stdin_fd = -1
        if self.stdin is not None and proc.stdin is not None:
            stdin_fd = proc.stdin.fileno()
            os.set_blocking(stdin_fd, False)
            sel.register(stdin_fd, selectors.EVENT_WRITE)
        else:
            _close(proc.stdin)  # no input: the command reads end-of-file at once
        pidfd = _pidfd(proc.pid)
        if pidfd >= 0:
            sel.register(pidfd, selectors.EVENT_READ)
        status_fd, self.status_fd = self.status_fd, -1
        if status_fd >= 0:
            sel.register(status_fd, selectors.EVENT_READ)
        reported = False  # the status came from the command's init: the launcher is still going
        status: int | None = None
        rusage: resource.struct_rusage | None = None
        drain_until: float | None = None
        exited_at = 0.0
        leftovers_killed = False
        monitoring = self.live.cgroup is not None
        next_check = time.monotonic() + TICK  # counters are read once a tick, not on each wake-up
        try:
            while True:
                readers = len(sinks)
                if status is not None and not readers:
                    break
                now = time.monotonic()
                if status is not None and drain_until is None:
                    # The main process is gone: its pipes normally reach EOF at once.
                    exited_at = now
                    drain_until = now + DRAIN_GRACE
                elif drain_until is not None and not leftovers_killed and now - exited_at > 0.05:
                    # Something else still holds the pipes: the tree must go.
                    self.live.kill_tree()
                    leftovers_killed = True
                if drain_until is not None and now >= drain_until:
                    break
                ticking = monitoring or pidfd < 0
                wait = self._wait_time(now, status is None, ticking, drain_until, next_check)
                for key, _ in sel.select(wait):
                    fd = int(key.fd)
                    if fd not in sel.get_map():
                        continue  # unregistered by an earlier event of this round
                    if fd == pidfd:
                        _, status, rusage = _wait4(proc.pid, 0)
                        sel.unregister(pidfd)
                        os.close(pidfd)
                        pidfd = -1
                    elif fd == status_fd:
                        code = _read_status(status_fd)
                        sel.unregister(status_fd)
                        os.close(status_fd)
                        status_fd = -1
                        if code is not None and status is None:
                            status, reported = code << 8, True  # as a normal exit with code
                            if pidfd >= 0:
                                sel.unregister(pidfd)
                                os.close(pidfd)
                                pidfd = -1
                    elif fd == stdin_fd:
                        if not self._feed(stdin_fd):
                            sel.unregister(stdin_fd)
                            _close(proc.stdin)
                            stdin_fd = -1
                    else:
                        data = os.read(fd, _READ_SIZE)
                        if data:
                            if sinks[fd].add(data):
                                self._kill(LIMIT_OUTPUT)
                        else:
                            sel.unregister(fd)
                            del sinks[fd]
                if status is None:
                    due = time.monotonic() >= next_check
                    if due:
                        next_check = time.monotonic() + TICK
                    if pidfd < 0:
                        pid, st, ru = _wait4(proc.pid, os.WNOHANG)
                        if pid:
                            status, rusage = st, ru
                    if status is None:
                        if self.live.cancelled.is_set():
                            self._kill("cancel")
                        elif self.deadline is not None and time.monotonic() >= self.deadline:
                            self._kill(LIMIT_TIMEOUT)
                        elif monitoring and due:
                            self._check_limits()
            if status is None:
                self.live.kill_tree()
                _, status, rusage = _wait4(proc.pid, 0)
            if reported:
                _reap_later(proc)  # exits once the command's namespaces are torn down
            else:
                proc.returncode = os.waitstatus_to_exitcode(status)
            return status, rusage
        finally:
            if pidfd >= 0:
                os.close(pidfd)
            if status_fd >= 0:
                os.close(status_fd)
            sel.close()

    def _wait_time(
        self,
        now: float,
        running: bool,
        ticking: bool,
        drain_until: float | None,
        next_tick: float,
    ) -> float | None:
        candidates: list[float] = []
        if running and ticking:
            candidates.append(min(TICK, max(0.0, next_tick - now)))
        if running and self.deadline is not None:
            candidates.append(max(0.0, self.deadline - now))
        if drain_until is not None:
            candidates.append(min(0.05, max(0.0, drain_until - now)))
        return min(candidates) if candidates else None

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


def _reap_later(proc: Process) -> None:
    """Keep ``proc`` (tearing its command's namespaces down) until it can be reaped."""
    with _pending_lock:
        _pending.append(proc)


def _reap_done() -> bool:
    """Reap the launchers of :func:`_reap_later` that are gone; True if none is left."""
    with _pending_lock:
        _pending[:] = [proc for proc in _pending if proc.poll() is None]
        return not _pending


def wait_for_launchers(deadline: float = 10.0) -> bool:
    """Wait until every launcher that outlived its command's result (its namespaces being torn
    down) is gone and reaped; False if ``deadline`` passed first."""
    end = time.monotonic() + deadline
    while not _reap_done():
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
