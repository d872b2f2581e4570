"""What the sandbox's filesystem looks like, as a backend-neutral list of mount operations.

The plan is computed once per command from the policy; the ``bwrap`` and ``unshare`` backends
render the same plan, so both give the same view:

* a fresh root whose top-level directories and symlinks are the host's (under an ``allow-list``
  view only :data:`ALLOWED` ones, ``/etc`` without :func:`etc_secrets`), bound read-only
  (read-write only when the policy turns ``read_only_root`` off); the root itself is made
  read-only at the end (top-level regular files, such as ``/.dockerenv``, are left out unless
  ``readable_paths`` names them);
* hidden paths replaced by an empty read-only directory (an unreadable file for files) where
  their links lead, except where ``readable_paths`` lets a path through read-only (a hidden
  directory with paths let through in it is remounted read-only once they are bound); policies
  whose paths cannot all hold as the host's links are are refused (see :mod:`.path_links`);
* a private ``/tmp`` and ``/dev/shm`` bounded by ``max_disk`` (see :mod:`.scratch`), a minimal
  ``/dev``, a ``/proc`` of the
  sandbox's own PID namespace with ``/proc/sys`` read-only (``/proc/keys`` unreadable), ``/sys``
  read-only (without the host's network interfaces when the network is isolated);
* the workspace bound read-write at ``/workspace``, then ``writable_paths`` and extra mounts;
* wherever a bind shows the engine's scratch root (:data:`~pytest_cleanroom.scratch.SCRATCH_ROOT`,
  holding the private ``/tmp`` of every command), an empty read-only directory over it, whatever
  the policy says; a bind of something inside it is refused.

What the host's part of a plan depends on (which entries the root has, whether each hidden or
readable path exists and is a directory, where links lead) is computed once per policy and kept
while every directory those answers were read from is unchanged (see :mod:`.lookups`): the plan
of each command shows the host as it is when the command starts, without looking every path up
again.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ...interpreter import interpreter_dirs, interpreter_links
from ...policy import Policy
from ...scratch import SCRATCH_ROOT, Scratch, own_view, separate_tmpfs_size, shown_at
from ..base import WORKSPACE_PATH, Mount
from . import path_links
from .lookups import Lookups, Stamp, Witness, coarse_now_ns, settled, stamp_of

OpKind = Literal[
    "ro-bind",  # bind ``source`` at ``target`` read-only (recursively)
    "bind",  # bind ``source`` at ``target`` read-write
    "symlink",  # create a symlink at ``target`` pointing to ``source``
    "dir",  # create an empty directory in the (read-only) root
    "hide-dir",  # an empty read-only directory over ``target``
    "hide-file",  # an unreadable empty file over ``target``
    "tmpfs",  # a private writable tmpfs at ``target`` (``size`` bytes, or the default)
    "proc",  # procfs of the sandbox's PID namespace
    "dev",  # a minimal /dev (null, zero, full, random, urandom, tty, pts, shm)
    "remount-ro",  # make ``target`` (the root) read-only once everything is mounted
    "mountpoint",  # make ``target`` like ``source``: each command of a warm sandbox binds there
]


@dataclass(frozen=True)
class FsOp:
    """One step of building the sandbox's filesystem."""

    kind: OpKind
    target: str
    source: str | None = None
    size: int | None = None


# Entries of the host's root that the plan provides itself.
_SPECIAL = frozenset({"proc", "dev", "sys", "tmp", WORKSPACE_PATH.lstrip("/")})
# Parts of procfs that could change the host if written: kept read-only.
PROC_READ_ONLY = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")

# procfs files that list what no namespace isolates: the kernel keys (and key quotas) of the
# invoking user, the engine's among them.
PROC_HIDDEN = ("/proc/keys", "/proc/key-users")
#: The host paths a plan binds or hides that are the kernel's own (in procfs and sysfs): never
#: replaced, and never holding a directory anyone made.
KERNEL_OWN = frozenset(("/sys", *PROC_READ_ONLY, *PROC_HIDDEN))

_root_cache: tuple[Stamp, tuple[tuple[str, str, str], ...]] | None = None


def root_entries() -> tuple[tuple[str, str, str], ...]:
    """``(name, kind, link)`` of each entry of the host's ``/``; cached until ``/`` changes."""
    global _root_cache
    now = coarse_now_ns()
    stamp = stamp_of("/")
    if _root_cache is not None and _root_cache[0] == stamp:
        return _root_cache[1]
    entries: list[tuple[str, str, str]] = []
    with os.scandir("/") as it:
        for entry in it:
            if entry.is_symlink():
                entries.append((entry.name, "link", os.readlink(entry.path)))
            elif entry.is_dir():
                entries.append((entry.name, "dir", ""))
            elif entry.is_file():
                entries.append((entry.name, "file", ""))
    result = tuple(sorted(entries))
    _root_cache = (stamp, result) if settled(stamp, now) else None
    return result


#: What an ``allow-list`` view shows of the host's root (with ``readable_paths``).
ALLOWED = frozenset({"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"})

_etc_cache: tuple[Stamp, tuple[str, ...]] | None = None


def etc_secrets() -> tuple[str, ...]:
    """Entries of ``/etc`` other users cannot read (keys, server configurations, the shadow
    files): hidden in an ``allow-list`` view, whose user is the invoking user (root on CI
    machines). Cached until ``/etc`` itself changes."""
    global _etc_cache
    now = coarse_now_ns()
    stamp = stamp_of("/etc")
    if _etc_cache is not None and _etc_cache[0] == stamp:
        return _etc_cache[1]
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk("/etc"):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if not stat.S_ISLNK(st.st_mode) and not st.st_mode & stat.S_IROTH:
                found.append(path)
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in found]
    _etc_cache = (stamp, tuple(found)) if settled(stamp, now) else None
    return tuple(found)


def host_net_dirs() -> list[str]:
    """Where sysfs lists the host's network interfaces: ``/sys/class/net`` and each device's
    ``net`` directory (``/sys/devices/virtual/net``, ``/sys/devices/pci.../net``). A sandbox
    with a network of its own gets them empty: the host's interface names are not its business.
    """
    found = {"/sys/class/net"}
    try:
        entries = list(os.scandir("/sys/class/net"))
    except OSError:
        return []
    for entry in entries:
        try:
            key = (entry.name, entry.inode())  # a link made anew has a new inode
        except OSError:
            continue
        device = _net_devices.get(key)
        if device is None:
            if len(_net_devices) > 1024:  # interfaces come and go (containers' veths)
                _net_devices.clear()
            device = _net_devices[key] = os.path.realpath(entry.path)
        if os.path.basename(os.path.dirname(device)) == "net":
            found.add(os.path.dirname(device))
    return sorted(found)


#: ``{(interface, inode of its link in /sys/class/net): the device's real path}``.
_net_devices: dict[tuple[str, int], str] = {}


_norm = path_links.normalized


def _ancestors(path: str) -> Iterable[str]:
    """``path`` itself, then each parent up to (excluding) ``/``."""
    p = path
    while p not in ("/", ""):
        yield p
        p = os.path.dirname(p)


class _View:
    """Answers "is this host path visible in the sandbox?" from the hidden/readable sets."""

    def __init__(self, hidden: set[str], readable: set[str]) -> None:
        self.hidden = hidden
        self.readable = readable

    def visible(self, path: str) -> bool:
        return self.hidden_by(path) is None

    def hidden_by(self, path: str) -> str | None:
        """The hidden path that hides ``path`` (``None``: it is visible)."""
        for p in _ancestors(path):
            if p in self.readable:
                return None
            if p in self.hidden:
                return p
        return None


def _view_of(policy: Policy, lookups: Lookups) -> _View:
    """The policy's view of the host; :class:`PolicyError` where its paths cannot all hold as
    the host's links are (see :mod:`.path_links`)."""
    real_of = {_norm(p): lookups.resolve(_norm(p))[0] for p in policy.hidden_paths}
    hidden = set(real_of) | set(real_of.values())
    readable = {_norm(p) for p in policy.readable_paths}
    path_links.check_hidden(policy, real_of, readable)
    real_readable = {p for p in readable if lookups.resolve(p)[0] == p}
    if policy.interpreter_readable:  # never a whole directory the policy names as hidden
        interpreter = {d for d in interpreter_dirs() if d not in hidden}
        readable |= interpreter
        real_readable |= interpreter
    if policy.filesystem_view == "allow-list":
        lookups.note("/")  # root_entries() and etc_secrets() last as long as "/" and "/etc"
        hidden |= {"/" + name for name, _, _ in root_entries() if "/" + name not in ALLOWED}
        lookups.note("/etc")
        hidden |= set(etc_secrets())
    private = {"/tmp"} if policy.private_tmp else set()
    # What hides a real path, readable paths reached through links not counted: those let
    # nothing through that is hidden where they lead.
    direct = _View((hidden - real_readable) | private, real_readable)
    view = _View((hidden - readable) | private, readable)
    path_links.check_let_through(policy, lookups, direct.hidden_by, view.hidden_by)
    return view


def _hide_kind(path: str, lookups: Lookups) -> OpKind | None:
    """``hide-dir`` for a directory, ``hide-file`` for anything else that exists, ``None`` if
    nothing is there or ``path`` is a link (``path`` is a real path: a link is one of a loop,
    which leads nowhere)."""
    mode = lookups.lstat_mode(path)
    if mode is None or stat.S_ISLNK(mode):
        return None
    return "hide-dir" if stat.S_ISDIR(mode) else "hide-file"


_proc_cache: tuple[FsOp, ...] | None = None


def _proc_ops() -> tuple[FsOp, ...]:
    """What keeps :data:`PROC_READ_ONLY` read-only and :data:`PROC_HIDDEN` unreadable: those
    of them the kernel has (which it does not add or drop while it runs: looked up once)."""
    global _proc_cache
    if _proc_cache is None:
        found = [FsOp("ro-bind", p, source=p) for p in PROC_READ_ONLY if os.path.exists(p)]
        found += [FsOp("hide-file", p) for p in PROC_HIDDEN if os.path.exists(p)]
        _proc_cache = tuple(found)
    return _proc_cache


def check_paths(policy: Policy) -> None:
    """:class:`~pytest_cleanroom.errors.PolicyError` where ``policy``'s hidden, readable and
    writable paths cannot all hold as the host's links are (see :mod:`.path_links`); answered
    once per reading of the host."""
    _host_part(policy)


def is_visible(policy: Policy, path: str) -> bool:
    """Whether the host's ``path`` can be read in a sandbox of ``policy`` (mounts aside)."""
    return _host_part(policy).view.visible(os.path.realpath(_norm(path)))


#: An op below the root's entries, with what orders it: ``(depth, rank, op)``.
_Ranked = tuple[int, int, FsOp]


@dataclass(frozen=True, eq=False)
class HostPart:
    """What a plan under one policy takes from the host: the root's entries, whether ``/sys``
    is there, and the covers of hidden paths and binds of readable and writable ones.

    One object stands for one reading of the host: a plan made while the directories it was
    read from are unchanged is given the same object (compared by identity), so that where
    :attr:`settled` is true, two plans given the same object saw the same entries in every
    one of those directories (the same files and directories hidden and bound), and whatever
    was in between."""

    view: _View
    root: tuple[FsOp, ...]
    has_sys: bool
    below: tuple[_Ranked, ...]
    #: Whether its witness can prove anything (see :meth:`.lookups.Witness.holds`); else each
    #: plan reads the host again and is given a new object.
    settled: bool = False

    @functools.cached_property
    def hidden(self) -> frozenset[str]:
        """The targets of the covers of hidden paths below the root's entries."""
        return frozenset(op.target for _, _, op in self.below if op.kind in _HIDES)

    @functools.cached_property
    def covers(self) -> frozenset[str]:
        """The hidden directories below the root's entries with nothing bound in them."""
        return frozenset(op.target for _, _, op in self.below if op.kind == "hide-dir")

    @functools.cached_property
    def bound(self) -> frozenset[str]:
        """The host directories its binds show (the root's entries, readable and writable
        paths)."""
        ops = [*self.root, *(op for _, _, op in self.below)]
        return frozenset(op.source for op in ops if op.kind in _BINDS and op.source is not None)


#: Covers of hidden paths (a tmpfs below the root's entries is a hidden directory with binds
#: in it, see :func:`_opened`).
_HIDES = ("hide-file", "hide-dir", "tmpfs")
_BINDS = ("bind", "ro-bind")

#: ``{policy: (its host part, what proves it still holds)}``, the most recently made last.
_host_parts: dict[Policy, tuple[HostPart, Witness]] = {}
_host_parts_lock = threading.Lock()
#: How many policies' host parts are kept.
KEEP_HOST_PARTS = 32


def _host_part(policy: Policy) -> HostPart:
    """The host's part of ``policy``'s plans: kept while the directories it was read from are
    unchanged (one ``stat`` each), else read again."""
    known = _host_parts.get(policy)
    if known is not None and known[1].holds():
        return known[0]
    lookups = Lookups()
    part = _read_host_part(policy, lookups)
    witness = lookups.witness()
    part = dataclasses.replace(part, settled=witness.settled)
    with _host_parts_lock:  # the preparer's thread plans too
        _host_parts.pop(policy, None)
        while len(_host_parts) >= KEEP_HOST_PARTS:
            del _host_parts[next(iter(_host_parts))]
        _host_parts[policy] = (part, witness)
    return part


def _read_host_part(policy: Policy, lookups: Lookups) -> HostPart:
    bind_root: OpKind = "ro-bind" if policy.read_only_root else "bind"
    view = _view_of(policy, lookups)
    hidden, readable = view.hidden, view.readable

    lookups.note("/")
    root: list[FsOp] = []
    for name, kind, link in root_entries():
        if name in _SPECIAL:
            continue
        path = "/" + name
        if kind == "link":
            root.append(FsOp("symlink", path, source=link))
        elif path in hidden:
            if kind == "dir":
                root.append(FsOp("dir", path))
        elif kind == "dir" or path in readable:
            root.append(FsOp(bind_root, path, source=path))
        # Regular files at the top level (container markers such as /.dockerenv) are left out:
        # each bind costs time on every command, and none of them is a tool's business.
    sys_mode = lookups.resolve("/sys")[1]

    below: list[_Ranked] = []
    scratch_there = lookups.resolve(SCRATCH_ROOT)[1] is not None

    def cover(op: FsOp) -> None:
        hide = scratch_cover(op, lookups.resolve(op.source)[0] if op.source else "")
        if hide is not None and scratch_there:
            below.append((hide.target.count("/"), _COVER_RANK, hide))

    def add(rank: int, op: FsOp) -> None:
        below.append((op.target.count("/"), rank, op))
        cover(op)

    for op in root:
        cover(op)

    for path in sorted(hidden):
        if path.count("/") < 2 or path == "/tmp":
            continue  # top-level entries are handled above
        if not view.visible(os.path.dirname(path)) or lookups.resolve(path)[0] != path:
            continue  # inside a hidden one, or a name through links: covered where they lead
        hide = _hide_kind(path, lookups)
        if hide is not None:
            add(0, FsOp(hide, path))
    for path in sorted(readable):
        # Only paths under a hidden one need a mount: the others are visible already (the
        # way there has no link: see path_links).
        real, mode = lookups.resolve(path)
        if mode is not None and not view.visible(os.path.dirname(path)):
            add(1, FsOp("ro-bind", path, source=real))
    if policy.interpreter_readable:  # the links by which the engine names its Python
        for link, target in interpreter_links():
            if not view.visible(link) and view.visible(lookups.resolve(link)[0]):
                add(1, FsOp("symlink", link, source=target))
    if policy.network == "host":
        resolv, found = lookups.resolve("/etc/resolv.conf")
        if resolv != "/etc/resolv.conf" and found is not None and not view.visible(resolv):
            add(1, FsOp("ro-bind", resolv, source=resolv))
    for path in sorted(_norm(p) for p in policy.writable_paths):
        real, mode = lookups.resolve(path)
        if mode is not None:  # where a visible link leads, or in a hidden directory
            target = real if view.visible(os.path.dirname(path)) else path
            add(2, FsOp("bind", target, source=real))
    has_sys = sys_mode is not None and stat.S_ISDIR(sys_mode)
    return HostPart(view, tuple(root), has_sys, tuple(_opened(below)))


#: Covers of the scratch root come after every other op at their depth.
_COVER_RANK = 5
#: After every op below the root: the read-only remount of a hidden directory with binds in it.
_LAST = 1 << 16


def _inside(covers: frozenset[str], binds: Iterable[FsOp]) -> bool:
    """Whether one of ``binds`` is inside one of the hidden directories ``covers``."""
    return bool(covers) and any(
        p in covers for op in binds for p in _ancestors(os.path.dirname(op.target))
    )


def _opened(below: Iterable[_Ranked]) -> list[_Ranked]:
    """``below`` with each hidden directory that has binds in it (readable or writable paths,
    mounts) made a writable empty tmpfs, remounted read-only once everything is mounted: its
    binds need mount points made in it (the remount is not recursive: the binds keep theirs)."""
    ranked = list(below)
    covers = {op.target for _, _, op in ranked if op.kind == "hide-dir"}
    opened: set[str] = set()
    for _, _, op in ranked:
        if op.kind in _BINDS:
            opened.update(p for p in _ancestors(os.path.dirname(op.target)) if p in covers)
    if not opened:
        return ranked
    result: list[_Ranked] = []
    for depth, rank, op in ranked:
        if op.kind == "hide-dir" and op.target in opened:
            result.append((depth, rank, FsOp("tmpfs", op.target)))
            result.append((_LAST, rank, FsOp("remount-ro", op.target)))
        else:
            result.append((depth, rank, op))
    return result


def scratch_cover(op: FsOp, source: str) -> FsOp | None:
    """The empty read-only directory over the engine's scratch root that ``op`` needs if it
    binds the host's ``source`` (links resolved) at or above it; a bind of something inside it
    is refused with :class:`~pytest_cleanroom.errors.PolicyError`."""
    if op.kind not in ("bind", "ro-bind"):
        return None
    at = shown_at(source, op.target, SCRATCH_ROOT)
    return None if at is None else FsOp("hide-dir", at)


def _command_cover(op: FsOp, source: str) -> FsOp | None:
    """:func:`scratch_cover` of a command's own bind: its workspace or a mount, which may be
    a view the engine made of it in its private directory."""
    return None if own_view(source) else scratch_cover(op, source)


def plan(
    policy: Policy,
    workspace: Path,
    mounts: Iterable[Mount] = (),
    scratch: Scratch | None = None,
) -> tuple[FsOp, ...]:
    """The mount operations that build the sandbox's filesystem for ``policy``; ``scratch``,
    when given, holds the host directories bound at ``/tmp`` and ``/dev/shm`` (one tmpfs of
    ``max_disk`` bytes for both); without it each is a tmpfs of half of ``max_disk`` (of all of
    it when ``/tmp`` is the host's), so that together they never hold more."""
    return plan_and_host(policy, workspace, mounts, scratch)[0]


def plan_and_host(
    policy: Policy,
    workspace: Path,
    mounts: Iterable[Mount] = (),
    scratch: Scratch | None = None,
) -> tuple[tuple[FsOp, ...], HostPart]:
    """:func:`plan`, and the :class:`HostPart` it was made from."""
    host = _host_part(policy)
    ops = list(host.root)
    if host.has_sys:
        ops.append(FsOp("ro-bind", "/sys", source="/sys"))
        if policy.network == "isolated":  # interfaces come and go: listed for each plan
            ops.extend(FsOp("hide-dir", d) for d in host_net_dirs())
    ops.append(FsOp("dev", "/dev"))
    each = separate_tmpfs_size(policy.max_disk, private_tmp=policy.private_tmp)
    if scratch is not None:
        ops.append(FsOp("bind", "/dev/shm", source=str(scratch.shm)))
    else:
        ops.append(FsOp("tmpfs", "/dev/shm", size=each))
    ops.append(FsOp("remount-ro", "/dev"))  # nothing to write there but /dev/shm
    ops.append(FsOp("proc", "/proc"))
    ops.extend(_proc_ops())
    if policy.private_tmp and scratch is not None:
        ops.append(FsOp("bind", "/tmp", source=str(scratch.tmp)))
    elif policy.private_tmp:
        ops.append(FsOp("tmpfs", "/tmp", size=each))
    else:
        ops.append(FsOp("bind", "/tmp", source="/tmp"))

    below = list(host.below)
    own = FsOp("bind", WORKSPACE_PATH, source=str(workspace))
    below.append((1, 3, own))
    covers = [_command_cover(own, str(workspace))]  # a resolved path: no lookup per command
    binds: list[FsOp] = []
    for mount in mounts:
        mount_kind: OpKind = "bind" if mount.writable else "ro-bind"
        op = FsOp(mount_kind, _norm(mount.destination), source=str(mount.source))
        below.append((op.target.count("/"), 4, op))
        binds.append(op)
        covers.append(_command_cover(op, os.path.realpath(mount.source)))
    for hide in covers:
        if hide is not None and os.path.isdir(SCRATCH_ROOT):
            below.append((hide.target.count("/"), _COVER_RANK, hide))
    if binds and _inside(host.covers, binds):
        below = _opened(below)  # a mount inside a hidden directory: it needs a mount point
    ops.extend(op for _, _, op in sorted(below, key=lambda t: (t[0], t[1], t[2].target)))
    if policy.read_only_root:
        ops.append(FsOp("remount-ro", "/"))
    return tuple(ops), host
