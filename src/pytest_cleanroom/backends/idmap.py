"""The sandbox's unprivileged user, and idmapped views that make a workspace its own.

Under a policy with ``unprivileged_user`` a root engine runs commands as :data:`SANDBOX_UID`
(``nobody``): file permissions are then checked as for any unprivileged user of the host, so a
root-only file in the sandbox's view stays unreadable and nothing can be chmod-ed or chown-ed
by virtue of being root. The workspace stays writable through an idmapped mount
(:func:`IdmappedView.create`, Linux 5.12+): its owner's files appear owned by the sandbox user,
and what the command creates is stored as the owner's on the host. The service socket
directories the engine binds in get read-only views of the same kind (:func:`views_of_mounts`).
Views are mounted under the engine's private mount directory (see
:mod:`pytest_cleanroom.scratch`), each in a directory only root and the sandbox user may enter,
and unmounted once the command ended.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import stat
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import scratch
from ..errors import BackendUnavailableError, PolicyError
from ..scratch import syscall as _syscall

# The mount API's kernel structure and numbers: one definition, in the standalone set-up step.
from ._nsinit import (
    AT_FDCWD,
    AT_RECURSIVE,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_RDONLY,
    MS_PRIVATE,
    SYS_MOUNT_SETATTR,
    MountAttr,
)

if TYPE_CHECKING:
    from .base import Mount
    from .namespace import FsOp

#: The host uid and gid a root engine's commands run as under ``unprivileged_user``.
SANDBOX_UID = 65534
SANDBOX_GID = 65534

_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_OPEN_TREE_CLONE = 1
_O_CLOEXEC = 0o2000000
_AT_EMPTY_PATH = 0x1000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_IDMAP = 0x00100000
_MOUNT_ATTR_NOSUID = 0x2

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_lock = threading.Lock()
_userns: dict[tuple[int, int, int], int] = {}
_counter = 0
#: One past the largest valid id (4294967295 is the invalid id, -1).
_ID_END = 4294967295


def runs_unprivileged(unprivileged_user: bool) -> bool:
    """Whether a command of a policy with ``unprivileged_user`` runs as :data:`SANDBOX_UID`
    (a root engine), rather than as the invoking user (who is unprivileged already)."""
    return unprivileged_user and os.geteuid() == 0


def _mapping_userns(uid: int, gid: int) -> int:
    """A descriptor of a user namespace mapping ``uid``/``gid`` to the sandbox user, made once
    per process (a short-lived ``unshare --user`` child holds it while its maps are written)."""
    key = (uid, gid, os.getpid())
    with _lock:
        fd = _userns.get(key)
        if fd is not None:
            return fd
        child = subprocess.Popen(
            ["unshare", "--user", "--", "cat"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin"},
        )
        try:
            mine = os.stat("/proc/self/ns/user").st_ino
            deadline = time.monotonic() + 5
            while os.stat(f"/proc/{child.pid}/ns/user").st_ino == mine:
                if time.monotonic() > deadline or child.poll() is not None:
                    raise OSError("unshare --user did not create a user namespace")
                time.sleep(0.001)
            maps = (("uid_map", _id_map(uid, SANDBOX_UID)), ("gid_map", _id_map(gid, SANDBOX_GID)))
            for name, line in maps:
                map_fd = os.open(f"/proc/{child.pid}/{name}", os.O_WRONLY)
                try:
                    os.write(map_fd, line.encode())
                finally:
                    os.close(map_fd)
            fd = os.open(f"/proc/{child.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            child.kill()
            child.wait()
        _userns[key] = fd
        return fd


def _id_map(owner: int, sandbox: int) -> str:
    """``owner`` shown as ``sandbox``, every other id as itself (the kernel refuses writes to a
    file whose owner a view does not map: a server's socket, say), except ``sandbox`` itself,
    whose files no one owns in the view."""
    if owner == sandbox:
        return f"0 0 {_ID_END}\n"
    lines = [(owner, sandbox, 1)]
    for start, end in ((0, min(owner, sandbox)), (min(owner, sandbox) + 1, max(owner, sandbox)),
                       (max(owner, sandbox) + 1, _ID_END)):  # fmt: skip
        if end > start:
            lines.append((start, start, end - start))
    return "".join(f"{inner} {outer} {count}\n" for inner, outer, count in lines)


class IdmappedView:
    """``source`` mounted at :attr:`path` with its owner's files shown as the sandbox user's."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(
        cls, source: Path, *, read_only: bool = False, idmapped: bool = True
    ) -> IdmappedView:
        """The view (read-only with ``read_only``; a plain bind without ``idmapped``), or
        :class:`BackendUnavailableError` naming why the kernel refused it."""
        global _counter
        _refuse_scratch_root(str(source))
        try:
            parent = scratch.private_mount_dir()
            if parent is None:
                raise OSError("the engine cannot mount here (not root)")
            with _lock:
                _counter += 1
                outer = f"view-{_counter}"
            # Only root and the sandbox user may enter: other users must not read the workspace
            # through the view, which the private directory lets them cross to.
            scratch.make_mount_point(outer, owner=(SANDBOX_UID, SANDBOX_GID))
            target = scratch.make_mount_point(f"{outer}/view")
            try:
                _attach(source, scratch.mount_target(target), idmapped, read_only)
            except OSError:
                scratch.remove_mount_point(target)
                raise
        except OSError as exc:
            raise BackendUnavailableError(
                f"cannot show {source} to the sandbox's unprivileged user through "
                f"{'an idmapped' if idmapped else 'a bind'} mount ({exc}): use Linux 5.12 or "
                "later and a filesystem with "
                "idmapped mounts (ext4, xfs, btrfs, tmpfs on 6.3+), or set "
                "unprivileged_user=False"
            ) from exc
        return cls(target)

    def release(self) -> None:
        """Unmount the view (in the background, as scratch tmpfs are)."""
        scratch.unmount_later(self.path)


def views_of_mounts(mounts: Sequence[Mount]) -> list[tuple[Mount, IdmappedView]]:
    """Read-only views of the directories the engine binds into a sandbox (service sockets):
    their owner's files, sockets included, become the sandbox user's to reach."""
    views: list[tuple[Mount, IdmappedView]] = []
    for mount in mounts:
        _refuse_scratch_root(os.path.realpath(mount.source))
    try:
        for mount in mounts:
            view = IdmappedView.create(mount.source, read_only=not mount.writable)
            shown = dataclasses.replace(mount, source=view.path, target=mount.destination)
            views.append((shown, view))
    except BaseException:
        for _, view in views:
            view.release()
        raise
    return views


def _refuse_scratch_root(source: str) -> None:
    """:class:`PolicyError` if a view of ``source`` (links resolved; a recursive clone) would
    hold the engine's scratch root or be inside it: the private ``/tmp`` of every command."""
    if scratch.own_mount_point(source):
        return  # a plain view of the engine's own (its scratch tmpfs, staged for the user)
    if scratch.shown_at(source, "/", scratch.SCRATCH_ROOT) is not None:
        raise PolicyError(
            f"cannot show {source} to the sandbox's unprivileged user: a view of it would hold "
            f"{scratch.SCRATCH_ROOT}, the private /tmp of every command; bind a directory "
            "that does not hold it"
        )


def stage_unreachable(ops: Sequence[FsOp], views: list[IdmappedView]) -> tuple[FsOp, ...]:
    """``ops`` with each bind whose source the sandbox user cannot reach (a directory on the way
    is closed to other users: the interpreter under ``/root``, say) bound from a plain view of
    it in the engine's private directory instead; the views made are added to ``views``. The
    sandbox's own parents of the target are fresh directories it can cross, and the bound
    files keep their own permissions, checked as the sandbox user's."""
    staged: list[FsOp] = []
    for op in ops:
        source = op.source if op.kind in ("bind", "ro-bind") else None
        # A file's mount point would have to be a file: such binds fail with the fix instead.
        if source is not None and not _reachable(source) and os.path.isdir(source):
            view = IdmappedView.create(Path(source), read_only=op.kind == "ro-bind", idmapped=False)
            views.append(view)
            op = dataclasses.replace(op, source=str(view.path))
        staged.append(op)
    return tuple(staged)


def _reachable(path: str) -> bool:
    """Whether other users may search every directory above ``path``."""
    parent = os.path.dirname(path)
    while parent not in ("/", ""):
        try:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return True  # gone: the sandbox tool reports it as for anyone
        parent = os.path.dirname(parent)
    return True


def detached_tree(
    source: Path, *, idmapped: bool, read_only: bool = False, nosuid_nodev: bool = False
) -> int:
    """A descriptor of a private clone of the mount tree at ``source``, attached nowhere (a
    sandbox's init mounts it where its plan says: see ``_nsinit.c``); with ``idmapped``, its
    owner's files shown as the sandbox user's, as :class:`IdmappedView` shows them. Closing the
    last descriptor of it unmounts it. :class:`OSError` names the refusing call."""
    tree = _syscall(
        "open_tree",
        _SYS_OPEN_TREE,
        AT_FDCWD,
        os.fsencode(source),
        _OPEN_TREE_CLONE | _O_CLOEXEC | AT_RECURSIVE,
    )
    try:
        userns = None
        if idmapped:  # the owner of the very directory cloned
            st = os.fstat(tree)
            userns = _mapping_userns(st.st_uid, st.st_gid)
        flags = (_MOUNT_ATTR_IDMAP if userns is not None else 0) | (
            MOUNT_ATTR_RDONLY if read_only else 0
        )
        if nosuid_nodev:
            flags |= _MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
        # Private: a clone of a shared mount is a peer of the host's (see _nsinit.c).
        attr = MountAttr(flags, 0, MS_PRIVATE, userns or 0)
        _syscall(
            "mount_setattr",
            SYS_MOUNT_SETATTR,
            tree,
            b"",
            _AT_EMPTY_PATH | AT_RECURSIVE,
            ctypes.byref(attr),
            ctypes.sizeof(attr),
        )
    except BaseException:
        os.close(tree)
        raise
    return tree


def _attach(source: Path, target: str, idmapped: bool, read_only: bool) -> None:
    tree = detached_tree(source, idmapped=idmapped, read_only=read_only)
    try:
        _syscall(
            "move_mount",
            _SYS_MOVE_MOUNT,
            tree,
            b"",
            AT_FDCWD,
            os.fsencode(target),
            _MOVE_MOUNT_F_EMPTY_PATH,
        )
    finally:
        with contextlib.suppress(OSError):
            os.close(tree)
