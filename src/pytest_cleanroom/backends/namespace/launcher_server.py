"""The launcher server: every command's launcher is a fork of one small compiled process.

Starting a launcher from Python means forking the interpreter (its whole address space, at the
cost of milliseconds of CPU on a loaded machine) and exec'ing a program. The compiled set-up
step's ``--serve`` mode (see ``_nsinit.c``) is started once per process instead: for each
command it receives the command's three pipe ends and its orders (the cgroups to join, the
rlimits, the descriptors to open, what to run) in one message on a socket, forks, and answers
with the PID.
The fork is made with ``CLONE_PARENT``: the launcher is this process's own child (waited for,
killed and supervised exactly as one started by :func:`.process_tree.start`), in a session and
a fresh session keyring of its own, with only its standard streams open. A launcher whose
command enters a warm sandbox goes on as ``--enter`` in the same process.

The server runs in the host's namespaces with the fixed launcher environment, dies with the
thread that started it (the spawner thread, which lives as long as the process: launchers
and bubblewrap's ``--die-with-parent`` are tied to it too), and exits when this process closes
its end of the socket. Where it cannot be started or has gone, commands start the plain way.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import fcntl
import os
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence

from .. import _nsinit_native
from .._handoff import LAUNCHER_ENV
from ._spawner import in_fresh_keyring
from .limits import Rlimits
from .process_tree import PIPE_ROOM, ServedProcess, Started

_REPLY = struct.Struct("=i")
#: The longest request the server takes (``MAX_REQUEST`` in _nsinit.c).
MAX_REQUEST = 1 << 20
#: Flags of a request (see ``receive`` in _nsinit.c): which optional pipes follow the four
#: descriptors every request has.
_WITH_MORE = 1
_WITH_STATUS = 2


class Forkserver:
    """One running launcher server and this process's end of its socket."""

    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self._proc = proc
        self._sock = sock
        self._lock = threading.Lock()
        self.owner = os.getpid()

    @classmethod
    def start(cls, program: str) -> Forkserver:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = in_fresh_keyring(
                lambda: subprocess.Popen(
                    [program, "--serve", str(theirs.fileno())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=dict(LAUNCHER_ENV),
                    close_fds=True,
                    pass_fds=(theirs.fileno(),),
                    start_new_session=True,
                ),
                _stop,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return cls(proc, ours)

    def alive(self) -> bool:
        return self._proc.poll() is None

    def launch(
        self,
        argv: Sequence[str],
        rlimits: Rlimits,
        fd_files: Mapping[int, str] | None = None,
        joins: Sequence[str] = (),
    ) -> Started | None:
        """A launcher that joins the cgroups of ``joins`` (``cgroup.procs`` files), sets
        ``rlimits``, opens ``fd_files`` (descriptor number -> file to read) and execs ``argv``;
        ``None`` if the server is gone (then nothing was started)."""
        status_read, status_write = os.pipe()
        try:
            started = self.spawn(orders(argv, rlimits, fd_files or {}, joins), status=status_write)
        except BaseException:
            os.close(status_read)
            raise
        finally:
            os.close(status_write)
        if started is None:
            os.close(status_read)
            return None
        return dataclasses.replace(started, status=status_read)

    def spawn(
        self, orders: bytes, more: int | None = None, status: int | None = None
    ) -> Started | None:
        """A launcher carrying out ``orders`` (see :func:`orders`); where they name no
        command, it then reads the rest of them from the pipe ``more`` (made ahead of its
        command: see prepared.py). A command entering a warm sandbox has its exit status
        written to the pipe ``status`` by its init (see :func:`.process_tree.supervise`).
        ``None`` if the server is gone (nothing was started)."""
        theirs: list[int] = []
        ours: list[int] = []
        try:
            for stream in range(3):  # the command reads stdin, writes stdout and stderr
                read_end, write_end = os.pipe()
                theirs.append(read_end if stream == 0 else write_end)
                ours.append(write_end if stream == 0 else read_end)
                if stream:  # room for what a command writes before its streams are watched
                    with contextlib.suppress(OSError):
                        fcntl.fcntl(read_end, fcntl.F_SETPIPE_SZ, PIPE_ROOM)
            t0, started_at = time.monotonic(), time.time()
            flags = (_WITH_MORE if more is not None else 0) | (
                _WITH_STATUS if status is not None else 0
            )
            extra = [fd for fd in (more, status) if fd is not None]
            pid = self._request(bytes([flags]) + orders, [*theirs, *extra])
        except BaseException:
            for fd in ours:
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        if pid is None:
            for fd in ours:
                os.close(fd)
            return None
        return Started(ServedProcess(pid, *ours), t0, started_at)

    def _request(self, request: bytes, fds: list[int]) -> int | None:
        """Send one request (its flags and orders, with ``fds``); the launcher's PID, or
        ``None`` (the server is gone, or the orders are longer than it takes)."""
        if len(request) > MAX_REQUEST:
            return None
        with self._lock:
            try:
                socket.send_fds(self._sock, [request], fds)
                reply = self._sock.recv(_REPLY.size)
            except OSError:
                return None
        if len(reply) != _REPLY.size:
            return None
        (pid,) = _REPLY.unpack(reply)
        return pid if pid > 0 else None

    def close(self) -> None:
        """Stop the server (launchers it forked are this process's children: not affected)."""
        with self._lock:
            self._sock.close()
        _stop(self._proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


def orders(
    argv: Sequence[str], rlimits: Rlimits, fd_files: Mapping[int, str], joins: Sequence[str]
) -> bytes:
    """The orders a launcher carries out (see ``launch_orders`` in _nsinit.c): the limits the
    shell's ``ulimit`` would set (processes are the cgroup's business), in bytes."""
    records: _nsinit_native.Records = [("join", (path,)) for path in joins]
    for name, soft, hard in rlimits.settings():
        if name != "nproc":
            records.append(("rlimit", (name, str(soft), str(hard))))
    records += [("fd", (str(fd), path)) for fd, path in fd_files.items()]
    records.append(("argv", argv))
    return _nsinit_native.encode_plan(records)


_lock = threading.Lock()
_server: Forkserver | None = None
_failed: tuple[int, str] | None = None


def forkserver() -> Forkserver | None:
    """This process's launcher server (started now if needed), or ``None`` where the compiled
    set-up step is unavailable or the server cannot be started (commands start the plain way)."""
    global _server, _failed
    pid = os.getpid()
    server = _server
    if server is not None and server.owner == pid and server.alive():
        return server
    with _lock:
        if _failed is not None and _failed[0] == pid:
            return None
        server = _server
        if server is not None and server.owner == pid:
            if server.alive():
                return server
            server.close()  # gone (killed): a new one
        program = _nsinit_native.program()[0]
        if program is None:
            _failed = (pid, "no compiled set-up step")
            return None
        try:
            _server = Forkserver.start(program)
        except OSError as exc:
            _failed = (pid, str(exc))
            return None
        return _server


def close() -> None:
    """Stop this process's launcher server (done at interpreter exit)."""
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None and server.owner == os.getpid():
        server.close()


atexit.register(close)
