"""Launchers made ready ahead of time, so that starting a command costs almost nothing.

Starting a sandboxed command the plain way means: fork and exec ``/bin/sh``, move it into the
command's fresh cgroups (the kernel makes the first move into a cgroup wait for an RCU grace
period: several milliseconds), then exec the sandbox. A :class:`Prepared` launcher has done the
first two steps before the command is known: already in its cgroups, it is blocked on a pipe from
which it reads what sets the rlimits and starts the sandbox. It is a fork of the launcher server
(see :mod:`.launcher_server`) where the compiled set-up step is available (no fork of this
interpreter, no shell to start; a command entering a warm sandbox goes on in the same process,
without another exec), else a ``/bin/sh`` sourcing a line.
A background thread keeps one ready per backend; ``run`` takes it, writes its orders, and the
command starts.

What the next command most likely needs (:class:`Ahead`: the last one's needs) is made with it:
its cgroups' limits, its scratch tmpfs and, with the launcher server, the warm sandbox of its
policy entered with its fresh mounts made, waiting for the rest of its plan and its workspace
(see ``_warm.py``); else the idmapped view of its workspace. What the command turns out to need
differently is made afresh.

If the engine dies, the pipe's writing end closes, the launcher reads nothing and exits: nothing
runs. Its cgroups are then swept by the next engine process.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import shlex
import signal
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...cgroups import RunCgroup
from ...errors import BackendUnavailableError
from ...scratch import Scratch
from .. import _nsinit_native
from .._handoff import HANDOFF_FD, Handoff
from .._warm import Entered
from ..idmap import IdmappedView
from ._spawner import spawn_here
from .launcher_server import Forkserver, forkserver, orders
from .limits import Rlimits
from .process_tree import LAUNCHER_MARK, Started, fd_redirections, reap_done, start


@dataclass(frozen=True)
class Ahead:
    """What the next command most likely needs (the last one's needs): its cgroups' limits,
    whether it joins a group in every hierarchy (see :meth:`Prepared.make`), and the size and
    owner of its scratch tmpfs (see :mod:`pytest_cleanroom.scratch`), if it has one."""

    memory_limit: int | None = None
    max_processes: int | None = None
    confine: bool = False
    scratch: tuple[int, tuple[int, int]] | None = None
    #: The workspace shown to the sandbox user through an idmapped view (see :mod:`..idmap`).
    view_of: Path | None = None
    #: Makes the plan entering the next command's warm sandbox, with the scratch tmpfs made
    #: for it (``None``: it cannot be entered ahead).
    enter: Callable[[Scratch | None], Entered | None] | None = field(default=None, compare=False)
    #: What tells the commands ``enter`` is for apart (their policy: the workspace comes with
    #: the command).
    entering: object = None


@dataclass
class _Parts:
    """What is made ahead with a launcher, each released when it is not used."""

    scratch: tuple[tuple[int, tuple[int, int]], Scratch] | None = None
    view: tuple[tuple[int, int, int, int], Path, IdmappedView] | None = None
    entered: Entered | None = None
    handoff: Handoff | None = None

    def release(self) -> None:
        if self.scratch is not None:
            self.scratch[1].release()
        if self.view is not None:
            self.view[2].release()
        if self.handoff is not None:
            self.handoff.close()
        self.scratch = self.view = self.entered = self.handoff = None


class Prepared:
    """A launcher in ``group``, waiting for its script on ``script_fd``: the compiled set-up
    step forked by the launcher server (``native``), else a ``/bin/sh``."""

    def __init__(
        self,
        started: Started,
        script_fd: int,
        group: RunCgroup,
        *,
        native: bool = False,
        status: int | None = None,
        joined: Sequence[str] = (),
        parts: _Parts | None = None,
        ahead: Ahead | None = None,
    ) -> None:
        self.started = started
        self.ahead = ahead or Ahead()  # what it was made for
        self.parts = parts or _Parts()  # what was made ahead besides the launcher
        self.status = status  # where its init reports the command's exit status
        self.script_fd = script_fd
        self.group = group
        self.native = native
        self.joined = tuple(joined)  # the cgroup.procs files it joined already
        self.owner = os.getpid()

    @classmethod
    def make(cls, ahead: Ahead = Ahead()) -> Prepared | None:
        """A new launcher, or ``None`` where cgroups are unavailable; its groups have the limits
        of ``ahead`` (set again when it is taken, if its command's differ). With
        ``ahead.confine`` it joins a group in every hierarchy (as a command allowed nested user
        namespaces must be), else those of the limits only (the rest, if the command needs
        them, at launch): a first move into a group waits for an RCU grace period, which is
        better spent before the command is known. A fresh scratch tmpfs is mounted for it too,
        as ``ahead.scratch`` says, and an idmapped view of ``ahead.view_of``; with
        ``ahead.enter`` (and the launcher server) it enters the warm sandbox of the next
        command and makes its fresh mounts, then waits for the rest (see :meth:`launch_entered`).
        """
        group = RunCgroup.create(memory_limit=ahead.memory_limit, max_processes=ahead.max_processes)
        if group is None:
            return None
        parts = _Parts()
        try:
            if ahead.scratch is not None:
                made = Scratch.create(*ahead.scratch)
                parts.scratch = (ahead.scratch, made) if made is not None else None
            if ahead.view_of is not None:
                parts.view = _view_ahead(ahead.view_of)
            server = forkserver()  # forks it without this interpreter's fork and a shell's start
            if ahead.enter is not None and server is not None:
                scratch = parts.scratch[1] if parts.scratch is not None else None
                try:
                    parts.entered = ahead.enter(scratch)
                except Exception:  # the command makes its own plan, and says what fails
                    parts.entered = None
                if parts.entered is not None:
                    parts.handoff = Handoff(parts.entered.plan)
            prepared = cls._launcher(server, group, group.join_files(confine=ahead.confine), parts)
        except BaseException:
            parts.release()
            group.release()
            raise
        if prepared is None:
            parts.release()
            group.release()
        else:
            prepared.ahead = ahead
        return prepared

    @classmethod
    def _launcher(
        cls, server: Forkserver | None, group: RunCgroup, joins: Sequence[str], parts: _Parts
    ) -> Prepared | None:
        if server is not None:  # a socket: the command's workspace may come with its orders
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            read_fd, write_fd = theirs.detach(), ours.detach()
        else:
            read_fd, write_fd = os.pipe()
        # Where its init reports a warm command's exit status (see supervise()).
        status = os.pipe() if server is not None else None
        try:
            started = _waiting_launcher(
                server, joins, read_fd, status[1] if status else None, parts
            )
        except BaseException:
            _close(write_fd, status[0] if status else None)
            raise
        finally:
            _close(read_fd, status[1] if status else None)
        if started is None:
            _close(write_fd, status[0] if status else None)
            return None
        native = server is not None
        status_fd = status[0] if status else None
        return cls(
            started, write_fd, group, native=native, status=status_fd, joined=joins, parts=parts
        )

    def take_scratch(self, size: int, owner: tuple[int, int]) -> Scratch | None:
        """The scratch tmpfs made ahead, if it has this size and owner (else released)."""
        made, self.parts.scratch = self.parts.scratch, None
        if made is None:
            return None
        if made[0] == (size, owner):
            return made[1]
        made[1].release()
        return None

    def take_view(self, workspace: Path) -> IdmappedView | None:
        """The idmapped view made ahead, if it shows ``workspace`` as it is now (the same
        directory, with the same owner: else it is released)."""
        made, self.parts.view = self.parts.view, None
        if made is None:
            return None
        identity, path, view = made
        if path == workspace and _identity(workspace) == identity:
            return view
        view.release()
        return None

    def joins_left(self, *, confine: bool) -> list[str]:
        """The ``cgroup.procs`` files the command's launcher must still join (see
        :meth:`.RunCgroup.join_files`): those it did not join ahead."""
        return [f for f in self.group.join_files(confine=confine) if f not in self.joined]

    def alive(self) -> bool:
        return self.started.proc.poll() is None

    def launch(
        self,
        argv: Sequence[str],
        rlimits: Rlimits,
        fd_files: Mapping[int, str] | None = None,
        joins: Sequence[str] = (),
    ) -> Started | None:
        """Make the launcher join the cgroups of ``joins`` (``cgroup.procs`` files), set
        ``rlimits`` and exec ``argv`` with ``fd_files`` open (descriptor number -> file to
        read); ``None`` if the launcher is gone."""
        if self.native:
            script = orders(argv, rlimits, fd_files or {}, joins)
        else:
            script = _shell_script(argv, rlimits, fd_files, joins)
        return self._send(script)

    @property
    def entered(self) -> Entered | None:
        """The warm sandbox it entered ahead of its command (its fresh mounts made), if any."""
        return self.parts.entered

    def launch_entered(self, rest: bytes, trees: Sequence[int] = ()) -> Started | None:
        """Send the launcher that entered a sandbox ahead the rest of its plan (``rest``: the
        limits, seccomp, directory, what to run and its environment) with ``trees``, the
        descriptors of what it mounts then (see ``_warm.passing``); ``None`` if it is gone.
        Take the plan it read first (:meth:`take_handoff`): it is closed once the command is
        done."""
        return self._send(rest, trees)

    def give_back_handoff(self, handoff: Handoff) -> None:
        """Return the plan taken with :meth:`take_handoff` when its command does not start
        here: it is closed once the launcher is gone (see :meth:`discard`)."""
        self.parts.handoff = handoff

    def take_handoff(self) -> Handoff | None:
        """The plan read by a launcher that entered a sandbox ahead (the caller closes it once
        the command is done: the launcher may still be opening it)."""
        handoff, self.parts.handoff = self.parts.handoff, None
        return handoff

    def _send(self, script: bytes, trees: Sequence[int] = ()) -> Started | None:
        self.parts.release()  # what its command did not take
        try:
            view = memoryview(script)
            if trees:  # with the first bytes (the init's first read takes them)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, self.script_fd)
                try:
                    view = view[socket.send_fds(sock, [view], list(trees)) :]
                finally:
                    sock.detach()  # the descriptor stays this object's, closed below
            while view:
                view = view[os.write(self.script_fd, view) :]
        except OSError:
            return None
        finally:
            os.close(self.script_fd)
            self.script_fd = -1
        status, self.status = self.status, None  # the caller's now
        return Started(self.started.proc, time.monotonic(), time.time(), status)

    def discard(self) -> None:
        """Kill the waiting shell and give its cgroups (and scratch tmpfs) back."""
        proc = self.started.proc
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Only now: until it is gone, it may still open its plan by its descriptor's number,
        # which a descriptor opened meanwhile would take.
        self.parts.release()
        if self.script_fd >= 0:
            os.close(self.script_fd)
            self.script_fd = -1
        if self.status is not None:
            os.close(self.status)
            self.status = None
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        self.group.release()


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    """What tells a directory's view apart: device, inode and owner (``None``: it is gone)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino, st.st_uid, st.st_gid


def _view_ahead(workspace: Path) -> tuple[tuple[int, int, int, int], Path, IdmappedView] | None:
    """An idmapped view of ``workspace`` and what it showed then; ``None`` if one cannot be
    made now (the command makes its own, and reports why it cannot)."""
    identity = _identity(workspace)
    if identity is None:
        return None
    try:
        view = IdmappedView.create(workspace)
    except BackendUnavailableError:
        return None
    if _identity(workspace) != identity:  # replaced meanwhile
        view.release()
        return None
    return identity, workspace, view


def _waiting_launcher(
    server: Forkserver | None,
    joins: Sequence[str],
    read_fd: int,
    status: int | None,
    parts: _Parts,
) -> Started | None:
    """A launcher in the groups of ``joins`` waiting for its orders on ``read_fd``: forked by
    ``server`` (reporting a warm command's status to ``status``), else a ``/bin/sh``; ``None``
    if the server is gone. One that enters a warm sandbox ahead (``parts.entered``) reads its
    plan from ``parts.handoff`` and only the rest of it on ``read_fd``."""
    if server is not None:
        records: _nsinit_native.Records = [("join", (path,)) for path in joins]
        if parts.entered is not None and parts.handoff is not None:
            records.append(("fd", (str(HANDOFF_FD), parts.handoff.path)))
            records.append(("argv", parts.entered.argv))
        return server.spawn(_nsinit_native.encode_plan(records), more=read_fd, status=status)
    script = (
        " && ".join(f'echo 0 >"${{{i + 1}}}"' for i in range(len(joins)))
        + f' || {{ echo "{LAUNCHER_MARK.decode()} cannot join cgroups" >&2; exit 125; }}\n'
        + f". /dev/fd/{read_fd}\n"
    )
    return start(["/bin/sh", "-c", script, "sh", *joins], pass_fds=[read_fd])


def _close(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None:
            os.close(fd)


def _shell_script(
    argv: Sequence[str], rlimits: Rlimits, fd_files: Mapping[int, str] | None, joins: Sequence[str]
) -> bytes:
    """The line the waiting ``/bin/sh`` sources."""
    exec_line = "exec " + shlex.join(argv) + fd_redirections(fd_files)
    steps = [f"echo 0 >{shlex.quote(path)}" for path in joins]
    line = " && ".join([*steps, *rlimits.ulimit_commands(), exec_line])
    return (
        line
        + f' || {{ echo "{LAUNCHER_MARK.decode()} cannot join cgroups or set rlimits" >&2;'
        + " exit 125; }\n"
    ).encode("utf-8", "surrogateescape")  # as Popen encodes argv


#: Launchers kept ready per backend: commands run back to back (a test's) each find one
#: that has joined its cgroups and entered its sandbox while the one before ran.
READY = 2


class Preparer:
    """Keeps one :class:`Prepared` launcher ready for a backend (made by a background thread),
    and, where that one enters a sandbox ahead, a spare that does not: for a command whose
    sandbox differs from the one entered (a test's first command, in a workspace of its own)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        # Mutated in place: the finalizers hold these lists.
        self._ready: list[Prepared] = []
        self._spare: list[Prepared] = []
        self._stale: list[Prepared] = []  # made for commands unlike the last one
        self._closed = False
        self._failed = False
        self._filling = False
        self._ahead = Ahead()
        _preparers.add(self)
        # A backend dropped without close() must not keep its waiting shells until exit.
        weakref.finalize(self, _discard_all, self._ready)
        weakref.finalize(self, _discard_all, self._spare)
        weakref.finalize(self, _discard_all, self._stale)

    def take(self, wait: float = 0.0) -> Prepared | None:
        """The oldest ready launcher, if there is a live one; one being made is waited for up
        to ``wait`` seconds (rather than made twice: the plain path costs about as much)."""
        end = time.monotonic() + wait
        with self._cond:
            while not self._ready and self._filling and (left := end - time.monotonic()) > 0:
                self._cond.wait(left)
            taken = self._ready[:1]
            del self._ready[:1]
        return _first_alive(taken)

    def discard_later(self, prepared: Prepared) -> None:
        """Have the background thread discard ``prepared`` (killing it and giving its cgroups
        back take longer than the command it was not right for may wait)."""
        with self._cond:
            self._stale.append(prepared)
            closed = self._closed
        if closed:
            self._discard_stale()

    def _discard_stale(self) -> None:
        with self._cond:
            stale = self._stale[:]
            self._stale.clear()
        _discard_all(stale)

    def take_spare(self) -> Prepared | None:
        """The spare launcher (entered in no sandbox), if there is a live one (never waits)."""
        with self._cond:
            spare = self._spare[:]
            self._spare.clear()
        return _first_alive(spare)

    def request(self, ahead: Ahead | None = None) -> None:
        """Ask the background thread for what is missing of a ready launcher and a spare
        (never blocks); ``ahead``, when given, is what the command that was just started
        needed (the next one most likely needs it too)."""
        with self._cond:
            if ahead is not None and ahead != self._ahead:
                # Made for commands unlike this one: discarded by the background thread.
                self._stale += [p for p in self._ready if p.ahead != ahead]
                self._ready[:] = [p for p in self._ready if p.ahead == ahead]
            if ahead is not None:  # the latest: its plan to enter is the newest command's
                self._ahead = ahead
            if self._closed or self._filling or not (self._missing() or self._stale):
                return
            if self._failed and not self._stale:
                return
            self._filling = True
        _worker.submit(self)

    def _missing(self) -> list[list[Prepared]]:
        """The slots to fill, the ready launchers' first (with ``_cond`` held)."""
        slots = [self._ready] * (READY - len(self._ready))
        if not self._spare and self._ahead.enter is not None:
            slots.append(self._spare)
        return slots

    def _fill(self) -> None:
        try:
            reap_done()  # the launchers of commands done since (off the commands' thread)
            while True:
                self._discard_stale()
                with self._cond:
                    slots = [] if self._closed or self._failed else self._missing()
                    ahead = self._ahead
                if not slots:
                    return
                slot = slots[0]
                if slot is self._spare:  # for a command in another sandbox: enters none
                    ahead = dataclasses.replace(ahead, view_of=None, enter=None)
                try:
                    prepared = Prepared.make(ahead)
                except OSError:
                    prepared = None
                if prepared is None:
                    self._failed = True  # no cgroups here: commands take the plain path
                    return
                with self._cond:
                    if slot is self._ready:  # for commands like the last one only
                        fits = len(slot) < READY and prepared.ahead == self._ahead
                    else:
                        fits = not slot
                    if not self._closed and fits:
                        slot.append(prepared)
                        continue
                prepared.discard()
                return
        finally:
            with self._cond:
                self._filling = False
                self._cond.notify_all()

    def close(self, deadline: float = 10.0) -> None:
        """Discard the ready launcher (waiting for one being made); no more are made."""
        end = time.monotonic() + deadline
        with self._cond:
            self._closed = True
            while self._filling and time.monotonic() < end:
                self._cond.wait(end - time.monotonic())
            ready = self._ready + self._spare + self._stale
            self._ready.clear()
            self._spare.clear()
            self._stale.clear()
        _discard_all(ready)


def _first_alive(prepared: list[Prepared]) -> Prepared | None:
    """The first live launcher of ``prepared`` made by this process; the others discarded."""
    found: Prepared | None = None
    for one in prepared:
        if one.owner != os.getpid():
            continue  # inherited through fork: the parent's business
        if found is None and one.alive():
            found = one
        else:
            one.discard()
    return found


def _discard_all(ready: list[Prepared]) -> None:
    for prepared in ready:
        if prepared.owner == os.getpid():
            prepared.discard()
    ready.clear()


class _Worker:
    """One long-lived daemon thread making launchers.

    Long-lived on purpose: a sandbox started from a launcher dies with the thread that forked
    the launcher (bwrap's ``--die-with-parent`` uses the parent-death signal, which follows the
    forking thread), so that thread must live as long as the process.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: list[weakref.ref[Preparer]] = []
        self._thread: threading.Thread | None = None

    def submit(self, preparer: Preparer) -> None:
        with self._cond:
            self._queue.append(weakref.ref(preparer))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="cleanroom-launcher-preparer", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _work(self) -> None:
        spawn_here()  # this thread lives as long as the process, as the spawner thread does
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                preparer = self._queue.pop(0)()
            if preparer is not None:
                with contextlib.suppress(Exception):
                    preparer._fill()
                del preparer


_worker = _Worker()
_preparers: weakref.WeakSet[Preparer] = weakref.WeakSet()


def close_all() -> None:
    """Discard every ready launcher (done at interpreter exit, before cgroups are removed)."""
    for preparer in list(_preparers):
        preparer.close()


def _after_fork_in_child() -> None:
    global _worker
    _worker = _Worker()


atexit.register(close_all)
os.register_at_fork(after_in_child=_after_fork_in_child)
