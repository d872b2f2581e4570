"""Warm sandboxes: namespaces and mounts built once per policy, entered by each command.

Building a sandbox (namespaces, dozens of mounts, a pivot) is most of what a command costs, and it
is the same for every command under one policy. A *holder* (``_nsinit.c --hold``, or a ``cat``
under bubblewrap) waits in it, built once minus what each command gets afresh; it keeps nothing
of a command or a test, so every cleanroom of the process shares it. Each command is then started by
``_nsinit.c --enter`` from its own launcher (so in its own cgroups, supervised and killed exactly
like a cold one): it joins the holder's namespaces and takes its own mount, IPC, UTS, cgroup and
PID namespaces, a fresh ``/proc``, ``/tmp`` and ``/dev/shm`` (with the same host-side scratch as a
cold command), a fresh session keyring, no capabilities, ``no_new_privs`` and the seccomp filter.

So nothing an earlier command left outside the workspace reaches a later one: its processes are
killed with its cgroup, its ``/tmp``, ``/dev/shm``, SysV IPC objects and PID namespace were its
own, and the holder itself is out of its sight (another PID namespace) and reach (no capabilities;
the compiled holder is also non-dumpable). A holder is used only while the filesystem plan of the
command is exactly the one it was built from (so a host path that appears or disappears since is
honoured as by a cold start), for one command at a time where the network is isolated (the holder's
network is shared), and only as root with cgroups (the engine clones host mounts into the sandbox).
Where any of this does not hold, or a holder cannot be made, the command starts cold.

A launcher made ahead of its command may enter the sandbox the next command most likely needs
(:meth:`WarmSandboxes.prepare_entry`): it then makes the fresh mounts and waits for the rest of
the plan, which is sent only if the command's plan is exactly the one entered
(:meth:`WarmSandboxes.claiming`: the same holder and fresh mounts, their host sources the same
directories as then, the holder free where the network is isolated). The workspace is not
mounted ahead: the command's own is cloned as it starts and comes with the rest of the plan
(:func:`passing`), so the sandbox entered ahead holds nothing of a test, and the first command
of a test starts from one as its later commands do.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..owner import start_token as process_start_time
from . import _nsinit_native
from ._handoff import HANDOFF_FD, Handoff
from .base import WORKSPACE_PATH, CommandSpec
from .namespace.filesystem import KERNEL_OWN, FsOp, HostPart
from .namespace.limits import Rlimits
from .namespace.process_tree import Started, launcher_argv, start

#: What every command gets afresh (and everything mounted below it).
FRESH_ROOTS = ("/proc", "/tmp", "/dev/shm", WORKSPACE_PATH)
#: Idle holders kept per kind of backend (one per policy in use, for a few policies).
KEEP = 4
#: How long a holder may take to build its sandbox (seconds).
READY_TIMEOUT = 30.0
#: A plan whose holder could not be made starts its commands cold for this long (seconds), then
#: a holder is tried again (the machine may only have been too busy for READY_TIMEOUT).
RETRY_AFTER = 30.0
#: After this many holders could not be made, and none ever was, none is tried again in this
#: process (holders cannot be made here).
GIVE_UP_AFTER = 3
#: How many plans whose holder failed are remembered.
KEEP_FAILED = 64

Records = _nsinit_native.Records
_Record = tuple[str, tuple[str, ...]]
#: ``(spec, base, program) -> (argv, handoff, descriptor files)``: the backend's command line
#: building ``base`` for ``spec``'s policy and running ``program`` as the holder there.
HolderLaunch = Callable[[CommandSpec, Sequence[FsOp], str], tuple[list[str], bytes, dict[int, str]]]


_BELOW_FRESH_ROOTS = tuple(root + "/" for root in FRESH_ROOTS)


def _fresh(op: FsOp) -> bool:
    """Whether each command mounts ``op`` itself: what it may write, what the host may mount
    and unmount meanwhile (the workspace, services' sockets, directories bound below the top
    level), and the files and directories it hides: the host replaces those by renaming over
    them (``/etc/gshadow`` by ``groupadd``), which detaches a mount kept on the old one, or by
    moving the old one aside, which takes the mount with it; either way a holder's would have
    shown the new one to every later command (not in ``/sys``, where nothing is renamed). Each
    command sees the host as a cold start would."""
    target = op.target
    if target in FRESH_ROOTS or target.startswith(_BELOW_FRESH_ROOTS):
        return True
    if op.kind == "hide-dir" and target.startswith("/sys/"):
        return False
    # (A tmpfs there is a hidden directory with binds in it, remounted read-only after them.)
    return op.kind in _FRESH_KINDS and target.count("/") >= 2


_FRESH_KINDS = ("bind", "ro-bind", "hide-file", "hide-dir", "tmpfs", "remount-ro")


def op_record(op: FsOp) -> _Record:
    if _is_passed(op):  # mounted from a descriptor that comes with the command
        return ("op", ("passed", op.target, "", ""))
    return ("op", (op.kind, op.target, op.source or "", "" if op.size is None else str(op.size)))


def _is_passed(op: FsOp) -> bool:
    """Whether ``op`` is a bind whose source comes with the command (see :func:`passing`)."""
    return op.source is None and op.kind in ("bind", "ro-bind")


def passing(fresh: Sequence[FsOp]) -> tuple[tuple[FsOp, ...], tuple[FsOp, ...]]:
    """``(fresh as a sandbox entered ahead makes it, the binds the command brings)``: the
    workspace bind without its source (the command's own workspace is cloned as it starts
    and passed to the waiting init as a descriptor: see ``_nsinit.c``), so that what is
    entered ahead holds nothing of a test; everything ``fresh`` mounts on or below the
    workspace is entered as it is."""
    below = WORKSPACE_PATH + "/"
    if any(op.target.startswith(below) for op in fresh):
        return tuple(fresh), ()
    shown: list[FsOp] = []
    passed: list[FsOp] = []
    for op in fresh:
        if op.target == WORKSPACE_PATH and op.kind in ("bind", "ro-bind") and not passed:
            passed.append(op)
            op = FsOp(op.kind, op.target)
        shown.append(op)
    return tuple(shown), tuple(passed)


def op_records(ops: Sequence[FsOp]) -> Records:
    return [op_record(op) for op in ops]


def split(ops: Sequence[FsOp]) -> tuple[tuple[FsOp, ...], tuple[FsOp, ...]]:
    """``(what the holder builds, what each command mounts afresh)``. The holder makes the
    mount points of the fresh mounts, and keeps a ``/proc`` (the kernel lets a command mount
    its own only where a whole one is visible)."""
    base: list[FsOp] = []
    fresh: list[FsOp] = []
    for op in ops:
        if not _fresh(op):
            base.append(op)
            continue
        fresh.append(op)
        if op.kind == "proc" and op.target == "/proc":
            base.append(op)
        elif op.target in ("/tmp", WORKSPACE_PATH):
            base.append(FsOp("dir", op.target))
        elif op.kind in ("bind", "ro-bind") and not op.target.startswith(FRESH_ROOTS):
            # Only whether the source is a directory matters (and a source made per command,
            # such as a service's idmapped view, must not tell holders apart).
            is_dir = os.path.isdir(op.source or "")
            base.append(FsOp("mountpoint", op.target, source="/" if is_dir else "/dev/null"))
    return tuple(base), tuple(fresh)


@dataclass(frozen=True)
class _Key:
    base: tuple[FsOp, ...]
    isolated_network: bool
    nested_user_namespaces: bool
    unprivileged_user: bool  # the holder's user namespace maps the sandbox user, not root


class Holder:
    """One live holder process and the sandbox it keeps."""

    def __init__(self, key: _Key, started: Started, pid: int, start_time: str) -> None:
        self.key = key
        self.started = started
        self.pid = pid
        self.start_time = start_time
        self.users = 0  # commands entering it now

    def alive(self) -> bool:
        return self.started.proc.poll() is None and process_start_time(self.pid) == self.start_time

    def stop(self) -> None:
        proc = self.started.proc
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


class WarmSandboxes:
    """The holders of one backend, and the choice between entering one and a cold start."""

    def __init__(self, holder_launch: HolderLaunch) -> None:
        self._holder_launch = holder_launch
        self._lock = threading.Lock()
        self._holders: list[Holder] = []  # mutated in place: the finalizer holds this list
        self._owner = os.getpid()
        self._making = threading.Lock()
        self._closed = False
        #: Why the last holder could not be made (diagnostics); see :attr:`gave_up`.
        self.failure: str | None = None
        #: Whether holders cannot be made here at all (then every command starts cold).
        self.gave_up = False
        self._failed: dict[_Key, float] = {}  # plans whose holder failed, and when
        self._failures = 0
        self._made_one = False
        # A backend dropped without close() must not keep its holders until the process exits.
        weakref.finalize(self, _stop_all, self._holders, self._owner)

    @property
    def holders(self) -> list[int]:
        """Host PIDs of the live holders (diagnostics)."""
        with self._lock:
            return [holder.pid for holder in self._holders if holder.alive()]

    def eligible(self, spec: CommandSpec, cgroups: bool) -> bool:
        policy = spec.policy
        return (
            cgroups
            and self._owner == os.getpid()  # a forked child starts cold: the holders are not its
            and os.geteuid() == 0
            and policy.isolate_pids
            and not self.gave_up
            and not self._closed
            and _nsinit_native.program()[0] is not None
        )

    @contextlib.contextmanager
    def entering(
        self, spec: CommandSpec, ops: Sequence[FsOp], records: Records
    ) -> Iterator[tuple[list[str], bytes] | None]:
        """``(launcher argv, handoff)`` entering a warm sandbox for ``spec``, or ``None``: start
        cold. ``records`` are the plan's other records (cwd, seccomp, argv, env...)."""
        base, fresh = split(ops)
        key = _key(spec, base)
        holder = self._acquire(spec, key)
        if holder is None:
            yield None
            return
        try:
            yield _entry(holder, fresh, records)
        finally:
            with self._lock:
                holder.users -= 1

    def prepare_entry(
        self, spec: CommandSpec, ops: Sequence[FsOp], records: Records, host: HostPart
    ) -> Entered | None:
        """What enters the warm sandbox of commands like ``spec`` ahead of the command (its
        fresh mounts made, the rest of its plan read later: see prepared.py), or ``None``.
        ``records`` are the plan's other records, none about the command itself; ``host``
        what ``ops`` took from the host."""
        base, fresh = split(ops)
        shown, passed = passing(fresh)
        key = _key(spec, base)
        with self._making:
            holder = self._holder(spec, key)
        if holder is None:
            return None
        argv, plan = _entry(holder, shown, records)
        proof = host if host.settled else None
        return Entered(key, shown, holder, argv, plan, _sources(shown), tuple(ops), passed, proof)

    @contextlib.contextmanager
    def claiming(
        self, entered: Entered, spec: CommandSpec, ops: Sequence[FsOp], host: HostPart
    ) -> Iterator[tuple[FsOp, ...] | None]:
        """The binds ``spec`` brings to the sandbox ``entered`` ahead (see :func:`passing`), if
        that is the one ``spec`` with ``ops`` (taken from the host as ``host`` says) would
        enter, its holder alive and free to use now (counted as in use until the block ends);
        ``None``: it is not."""
        passed = _same_entry(entered, spec, ops, host)
        holder = entered.holder
        with self._lock:
            usable = (
                passed is not None
                and not self._closed
                and not (entered.key.isolated_network and holder.users)
                and holder.started.proc.poll() is None  # its sandbox tool ends with it
            )
            if usable:
                holder.users += 1
        try:
            yield passed if usable else None
        finally:
            if usable:
                with self._lock:
                    holder.users -= 1

    def _acquire(self, spec: CommandSpec, key: _Key) -> Holder | None:
        """The live holder for ``key`` (made now if needed), counted as in use; ``None`` when
        this command must start cold. Holders are made one at a time."""
        with self._making:
            holder = self._holder(spec, key)
            if holder is None:
                return None
            with self._lock:
                # Commands sharing the holder's network could reach each other there.
                if key.isolated_network and holder.users:
                    return None
                holder.users += 1
            return holder

    def _holder(self, spec: CommandSpec, key: _Key) -> Holder | None:
        """The live holder for ``key``, made now if needed (with ``_making`` held)."""
        with self._lock:
            if self._closed:
                return None
            holder = self._find(key)
        if holder is None:
            failed = self._failed.get(key)
            if failed is not None and time.monotonic() - failed < RETRY_AFTER:
                return None
            holder = self._make(spec, key)
            if holder is None:
                if len(self._failed) > KEEP_FAILED:
                    self._failed.clear()
                self._failed[key] = time.monotonic()
                self._failures += 1
                self.gave_up = not self._made_one and self._failures >= GIVE_UP_AFTER
                return None
            self._failed.pop(key, None)
            self._made_one = True
            with self._lock:
                if self._closed:
                    holder.stop()
                    return None
                self._keep(holder)
        return holder

    def _find(self, key: _Key) -> Holder | None:
        for holder in self._holders:
            if holder.key != key:
                continue
            self._holders.remove(holder)
            if holder.alive():
                self._holders.append(holder)  # most recently used last
                return holder
            holder.stop()  # gone: reaped (a command entering it now fails to)
            return None
        return None

    def _keep(self, holder: Holder) -> None:
        """Keep ``holder``, stopping the least recently used idle ones beyond :data:`KEEP`."""
        self._holders.append(holder)
        for old in [h for h in self._holders if not h.users][: max(0, len(self._holders) - KEEP)]:
            if old is not holder:
                self._holders.remove(old)
                old.stop()

    def _make(self, spec: CommandSpec, key: _Key) -> Holder | None:
        program = _nsinit_native.program()[0]
        if program is None:
            return None
        argv, data, fd_files = self._holder_launch(spec, key.base, program)
        with Handoff(data) as handoff:
            fds = {**fd_files, HANDOFF_FD: handoff.path}
            started = start(launcher_argv(argv, None, Rlimits(), fds, confine=False))
            ready = _wait_ready(started)
        holder_pid = _innermost(started.proc.pid) if ready else None
        start_time = process_start_time(holder_pid) if holder_pid is not None else None
        if holder_pid is None or start_time is None:
            proc = started.proc
            assert isinstance(proc, subprocess.Popen)  # made by start()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            _, err = proc.communicate()
            self.failure = err.decode(errors="replace").strip() or "the holder did not start"
            return None
        return Holder(key, started, holder_pid, start_time)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            holders = self._holders[:]
            self._holders.clear()
        _stop_all(holders, self._owner)


@dataclass(frozen=True)
class Entered:
    """A plan entering a warm sandbox ahead of its command, and what it was made for."""

    key: _Key
    fresh: tuple[FsOp, ...]
    holder: Holder
    argv: list[str]
    plan: bytes
    #: What the host paths it binds and hides were as it was made (see :func:`_sources`).
    sources: tuple[tuple[str, Identity | None], ...]
    #: The plan it was made from, and the binds its command brings (see :func:`passing`).
    made: tuple[FsOp, ...] = ()
    passed: tuple[FsOp, ...] = ()
    #: The host's part of that plan, where it proves that the host paths it hides are the
    #: same ones for as long as a later plan is given the same object (see HostPart).
    host: HostPart | None = None


def _same_entry(
    entered: Entered, spec: CommandSpec, ops: Sequence[FsOp], host: HostPart
) -> tuple[FsOp, ...] | None:
    """The binds ``spec`` brings to ``entered`` if it is what ``spec`` with the plan ``ops``
    (made from ``host``) would enter: the same holder and fresh mounts, and their host paths
    still the same ones (those ``host`` proves so not looked at again); else ``None``."""
    if tuple(ops) == entered.made:  # the same plan (the usual case): the same split
        key = _key(spec, entered.key.base)
        shown, passed = entered.fresh, entered.passed
    else:
        base, fresh = split(ops)
        key = _key(spec, base)
        shown, passed = passing(fresh)
    if (entered.key, entered.fresh) != (key, shown):
        return None
    proven = _proven(host if entered.host is host else None)
    was = tuple(identity for path, identity in entered.sources if path not in proven)
    if was != tuple(identity for _, identity in _sources(shown, proven)):
        return None
    return passed


def _proven(host: HostPart | None) -> frozenset[str]:
    """The host paths whose identity :func:`_sources` need not read: the kernel's own files
    in ``/proc`` and ``/sys`` (never replaced), and the hidden paths of a settled ``host``
    that the sandbox entered ahead was planned from: while later plans are given that same
    object, none of the directories they were looked up in changed (no entry was added,
    removed or renamed over), so each names the file it named then."""
    return KERNEL_OWN if host is None else KERNEL_OWN | host.hidden


#: Device, inode and owner of a host path.
Identity = tuple[int, int, int, int]


def _sources(
    fresh: Sequence[FsOp], proven: frozenset[str] = KERNEL_OWN
) -> tuple[tuple[str, Identity | None], ...]:
    """``(path, identity)`` of the source of each bind of ``fresh`` and of each file it hides
    (``None``: missing), but for the paths ``proven`` otherwise: a directory replaced since a
    sandbox was entered ahead, or a hidden file or directory renamed over or moved aside
    (which detaches the mount hiding it, or takes it along), tells its plan apart from the
    command's, whose paths are the same. (The workspace, passed with the command, is cloned as
    it starts.)"""
    found: list[tuple[str, Identity | None]] = []
    look: Callable[[str], os.stat_result]
    for op in fresh:
        if op.kind in ("bind", "ro-bind") and op.source is not None:
            path, look = op.source, os.stat
        elif op.kind in ("hide-file", "hide-dir") or (
            op.kind == "tmpfs" and op.target not in FRESH_ROOTS
        ):
            path, look = op.target, os.lstat
        else:
            continue
        if path in proven:
            continue
        try:
            st = look(path)
        except OSError:
            found.append((path, None))
            continue
        found.append((path, (st.st_dev, st.st_ino, st.st_uid, st.st_gid)))
    return tuple(found)


def _key(spec: CommandSpec, base: tuple[FsOp, ...]) -> _Key:
    policy = spec.policy
    return _Key(
        base,
        policy.network == "isolated",
        policy.nested_user_namespaces,
        policy.unprivileged_user,
    )


def _entry(holder: Holder, fresh: Sequence[FsOp], records: Records) -> tuple[list[str], bytes]:
    """``(launcher argv, plan)`` entering ``holder``'s sandbox with the ``fresh`` mounts."""
    program = _nsinit_native.program()[0]
    assert program is not None
    plan: Records = [
        *op_records(fresh),
        ("holder", (str(holder.pid), holder.start_time)),
        ("join_net", ("1" if holder.key.isolated_network else "0",)),
        ("nested", ("1" if holder.key.nested_user_namespaces else "0",)),
        *records,
    ]
    return [program, "--enter", str(HANDOFF_FD)], _nsinit_native.encode_plan(plan)


def _stop_all(holders: list[Holder], owner: int) -> None:
    if owner == os.getpid():
        for holder in holders:
            holder.stop()
    holders.clear()


def _wait_ready(started: Started) -> bool:
    stdout = started.proc.stdout
    assert stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(stdout, selectors.EVENT_READ)
        if not sel.select(READY_TIMEOUT):
            return False
    return os.read(stdout.fileno(), 16) == b"ready\n"


def _innermost(pid: int) -> int | None:
    """The holder: the process at the end of the chain of only children from ``pid`` (the
    sandbox tool's own processes come first); ``None`` where the chain forks."""
    while True:
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                children = f.read().split()
        except OSError:
            return None
        if not children:
            return pid
        if len(children) > 1:
            return None
        pid = int(children[0])


_shared_lock = threading.Lock()
_shared: dict[tuple[int, tuple[str, ...]], WarmSandboxes] = {}


def shared_warm_sandboxes(identity: tuple[str, ...], launch: HolderLaunch) -> WarmSandboxes:
    """The process's warm sandboxes for backends of ``identity`` (made with ``launch``)."""
    key = (os.getpid(), identity)
    with _shared_lock:
        warm = _shared.get(key)
        if warm is None:
            warm = _shared[key] = WarmSandboxes(launch)
        return warm


def close_all() -> None:
    """Stop every holder of this process (done at interpreter exit)."""
    with _shared_lock:
        mine = [warm for (pid, _), warm in _shared.items() if pid == os.getpid()]
    for warm in mine:
        warm.close()


atexit.register(close_all)
