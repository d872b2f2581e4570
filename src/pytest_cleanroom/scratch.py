"""A command's private ``/tmp`` and ``/dev/shm``: one tmpfs of ``max_disk`` bytes for both.

As root the engine mounts that tmpfs on the host, under a private directory of its own in
:data:`SCRATCH_ROOT` (a small read-only tmpfs, made private, so the mounts propagate nowhere;
see :class:`_Private`: a
sandbox that sees it, even as root without capabilities, can change nothing in it, and the
engine mounts through its own handle of it, never through a path), and the sandbox binds its ``tmp``
and ``shm`` directories: the two share one budget, and once the command has ended the engine
sees whether it filled it (reported as the ``disk`` limit) before unmounting it. Without root
each gets a tmpfs of half of ``max_disk`` inside the sandbox: bounded together, but a full one
cannot be told from outside. Mounts left by a process that died (its owner lock is free) are
unmounted by the next one.

:data:`SCRATCH_ROOT` is root's alone (no link on the way, nothing in it writable by anyone
else: see :func:`open_scratch_root`) and every sandbox plan hides it, whatever the policy shows
of the host (see ``backends/namespace/filesystem.py``): a command seeing the host's ``/tmp``
finds there nothing of the engine's, and no sandbox sees another command's tmpfs. The root and
the private directories may be crossed by other users (a sandbox tool running as the sandbox's
unprivileged user must reach what it binds) but not listed; each tmpfs in it is reachable by
its owner only: root, or the unprivileged user of the command it belongs to.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import errno
import fcntl
import os
import queue
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

from .errors import PolicyError, SandboxError

_MS_PRIVATE = 1 << 18
_MS_NOSUID = 2
_MS_NODEV = 4
_MNT_DETACH = 2
_UMOUNT_NOFOLLOW = 8
#: Free space under which a scratch tmpfs counts as filled (tmpfs allocates whole pages).
FULL_BELOW = 64 * 1024
#: Where a root engine keeps its private directories (one per process, ``<pid>-<random>``,
#: beside its owner lock ``<pid>-<random>.lock``, held for as long as the process lives).
SCRATCH_ROOT = "/run/cleanroom/scratch"
_LOCK_SUFFIX = ".lock"
#: Where earlier versions kept them (``/tmp/cleanroom-scratch-<pid>-<random>``), with the
#: owner lock in the private directory itself: their leftovers are still unmounted.
_OLD_PREFIX = "cleanroom-scratch-"
_OLD_OWNER_LOCK = "owner"
#: Seconds a scratch directory that is no mount point must have stood unchanged before the
#: sweep removes it (one is made a moment before its tmpfs is mounted on it).
_LITTER_AGE = 60.0
#: Seconds an unmounted scratch tmpfs's or view's directory is kept before it is removed (see
#: :class:`_Unmounter`): far longer than a sandbox tool takes to set up its mounts.
KEEP_EMPTIED = 30.0

_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_CLOEXEC = 1  # FSOPEN_CLOEXEC, FSMOUNT_CLOEXEC
_OPEN_TREE_CLONE = 1
_AT_EMPTY_PATH = 0x1000
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOUNT_ATTR_RDONLY = 0x1
_MOUNT_ATTR_NOSUID = 0x2
_MOUNT_ATTR_NODEV = 0x4
_MOUNT_ATTR_NOEXEC = 0x8

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.syscall.restype = ctypes.c_long
_lock = threading.Lock()
_counter = 0


class _Private:
    """The private directory: a small tmpfs mounted read-only at :attr:`path`, where no one can
    create, rename, remove or change anything, root without capabilities included (the mount
    refuses it whatever the permissions say). The engine changes it through :attr:`writable`, a
    writable clone of the mount attached nowhere, and mounts on it through :attr:`mounted` (the
    read-only mount itself), never by a path someone else could have swapped. Its owner holds
    :attr:`lock`, the lock of ``<path>.lock``, for as long as it lives."""

    def __init__(self, pid: int, path: Path, mounted: int, writable: int, lock: int) -> None:
        self.pid = pid
        self.path = path
        self.mounted = mounted
        self.writable = writable
        self.lock = lock

    def relative(self, path: Path) -> str:
        """``path`` (under :attr:`path`) relative to the private directory."""
        return str(path.relative_to(self.path))

    def target(self, relative: str) -> str:
        """The name by which this process reaches ``relative`` in the mount itself."""
        return f"/proc/self/fd/{self.mounted}/{relative}"


_parent: _Private | None = None


def syscall(what: str, *args: int | bytes | ctypes._CArgObject | None) -> int:
    """The system call numbered ``args[0]``; :class:`OSError` naming ``what`` if it failed."""
    wide = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    result = int(_libc.syscall(*wide))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def separate_tmpfs_size(max_disk: int | None, *, private_tmp: bool) -> int | None:
    """The size of each of ``/tmp`` and ``/dev/shm`` when they cannot share one tmpfs:
    ``max_disk`` split between them, so that together they never hold more."""
    if max_disk is None or not private_tmp:
        return max_disk
    return max_disk // 2


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str) -> bool:
    result: int = _libc.mount(
        source.encode() if source else None,
        target.encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    return result == 0


class _MountAttr(ctypes.Structure):
    """The kernel's ``struct mount_attr``. The standalone set-up step (``backends/_nsinit.py``)
    has its own: it imports nothing of this package, and this bottom module nothing of it."""

    _fields_ = [(name, ctypes.c_uint64) for name in ("set", "clear", "propagation", "userns")]


_SYS_MOUNT_SETATTR = 442  # the same number on every architecture (Linux 5.12+)


def _set_attributes(tree: int, set_: int, clear: int) -> None:
    """Set and clear ``MOUNT_ATTR_*`` flags of the mount ``tree`` and make it private."""
    attr = _MountAttr(set_, clear, _MS_PRIVATE, 0)
    syscall("mount_setattr", _SYS_MOUNT_SETATTR, tree, b"", _AT_EMPTY_PATH,
             ctypes.byref(attr), ctypes.sizeof(attr))  # fmt: skip


class ScratchRootError(SandboxError):
    """:data:`SCRATCH_ROOT` (or a directory above it) is not root's alone: a link, a file,
    another user's directory, or one that others may write."""


def open_scratch_root(root: str | None = None) -> int:
    """A descriptor of the directory ``root`` (:data:`SCRATCH_ROOT`), each missing part of it
    made (mode 0711) and none followed if it is a link; :class:`ScratchRootError` naming the
    part and the fix if one is not a directory of this process's user that only it may write
    and others may cross."""
    root = SCRATCH_ROOT if root is None else root
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    path = "/"
    try:
        _check_root_part(fd, path, root)
        for name in root.strip("/").split("/"):
            path = os.path.join(path, name)
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o711, dir_fd=fd)
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                child = os.open(name, flags, dir_fd=fd)
            except OSError as error:
                if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise ScratchRootError(
                    _wrong_root(path, "is a link or no directory", root)
                ) from None
            os.close(fd)
            fd = child
            _check_root_part(fd, path, root, ours=path in (root, os.path.dirname(root)))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_root_part(fd: int, path: str, root: str, *, ours: bool = False) -> None:
    """Refuse the directory ``fd`` (at ``path``) unless only this user may change it and
    others may cross it; one of the engine's own (``ours``) is made crossable (the umask, or
    another engine that made it a moment ago, may have left it 0700)."""
    st = os.fstat(fd)
    if st.st_uid != os.geteuid():
        raise ScratchRootError(_wrong_root(path, f"belongs to uid {st.st_uid}", root))
    if st.st_mode & 0o022:
        why = f"is writable by others (mode {st.st_mode:o})"
        raise ScratchRootError(_wrong_root(path, why, root))
    if ours and st.st_mode & 0o7777 != 0o711:
        os.fchmod(fd, 0o711)  # crossed by the sandbox user's tools, listed by root only
    elif not st.st_mode & 0o001:
        why = f"cannot be crossed by other users (mode {st.st_mode:o})"
        raise ScratchRootError(_wrong_root(path, why, root))


def _wrong_root(path: str, why: str, root: str) -> str:
    return (
        f"{path} {why}: the engine mounts each command's private /tmp below {root} "
        f"and only where no one but root can change the way there; remove {path} (the engine "
        f"makes it again) or make it root's: chown root:root {path} && chmod 0711 {path}"
    )


def _owner_lock(root: int) -> tuple[str, int]:
    """``(name, lock)``: a fresh private directory's name in ``root`` (its directory made
    there) and its owner lock ``<name>.lock``, taken before the directory exists, so that a
    sweep never finds the directory unowned."""
    while True:
        name = f"{os.getpid()}-{secrets.token_hex(4)}"
        flags = os.O_CREAT | os.O_EXCL | os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            lock = os.open(name + _LOCK_SUFFIX, flags, 0o600, dir_fd=root)
        except FileExistsError:
            continue
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            os.mkdir(name, 0o700, dir_fd=root)
        except BaseException as error:
            os.close(lock)
            os.unlink(name + _LOCK_SUFFIX, dir_fd=root)
            if isinstance(error, FileExistsError):
                continue
            raise
        return name, lock


def _make_private() -> _Private:
    """Mount a fresh private directory (see :class:`_Private`); :class:`OSError` if it cannot,
    :class:`ScratchRootError` if :data:`SCRATCH_ROOT` is not root's alone."""
    root = open_scratch_root()
    try:
        name, lock = _owner_lock(root)
        try:
            mounted, writable = _mount_private(root, name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.rmdir(name, dir_fd=root)
            os.unlink(name + _LOCK_SUFFIX, dir_fd=root)
            os.close(lock)
            raise
    finally:
        os.close(root)
    return _Private(os.getpid(), Path(SCRATCH_ROOT, name), mounted, writable, lock)


def _mount_private(root: int, name: str) -> tuple[int, int]:
    """Mount a fresh private directory on ``name`` in ``root``: ``(the read-only mount, its
    writable clone attached nowhere)``."""
    fds: list[int] = []
    try:
        fs = syscall("fsopen", _SYS_FSOPEN, b"tmpfs", _CLOEXEC)
        fds.append(fs)
        for key, value in ((b"mode", b"0711"), (b"size", b"1m")):
            syscall("fsconfig", _SYS_FSCONFIG, fs, _FSCONFIG_SET_STRING, key, value, 0)
        syscall("fsconfig", _SYS_FSCONFIG, fs, _FSCONFIG_CMD_CREATE, None, None, 0)
        flags = _MOUNT_ATTR_NOSUID | _MOUNT_ATTR_NODEV | _MOUNT_ATTR_NOEXEC
        mounted = syscall("fsmount", _SYS_FSMOUNT, fs, _CLOEXEC, flags)
        fds.append(mounted)
        # Read-only before it is attached: every copy of it anywhere is read-only too.
        _set_attributes(mounted, _MOUNT_ATTR_RDONLY, 0)
        syscall("move_mount", _SYS_MOVE_MOUNT, mounted, b"", root, name.encode(),
                 _MOVE_MOUNT_F_EMPTY_PATH)  # fmt: skip
        fds.remove(mounted)  # unmounted by path from here on
        try:
            if not _mount(None, f"/proc/self/fd/{mounted}", None, _MS_PRIVATE, ""):
                raise OSError(ctypes.get_errno(), "cannot make the scratch directory private")
            flags = _OPEN_TREE_CLONE | os.O_CLOEXEC | _AT_EMPTY_PATH
            writable = syscall("open_tree", _SYS_OPEN_TREE, mounted, b"", flags)
            fds.append(writable)
            _set_attributes(writable, 0, _MOUNT_ATTR_RDONLY)
        except OSError:
            _libc.umount2(f"/proc/self/fd/{mounted}".encode(), _MNT_DETACH)
            os.close(mounted)
            raise
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    os.close(fs)
    return mounted, writable


def _private_parent() -> _Private | None:
    """This process's private directory for mounts, made once (``None``: cannot mount here)."""
    global _parent
    if _parent is not None and _parent.pid == os.getpid():
        return _parent
    if os.geteuid() != 0:
        return None
    _unmount_leftovers()
    try:
        _parent = _make_private()
    except OSError:
        return None
    return _parent


def private_mount_dir() -> Path | None:
    """This process's private directory for mounts (``None``: it cannot mount)."""
    with _lock:
        private = _private_parent()
    return None if private is None else private.path


def make_mount_point(
    relative: str, *, mode: int = 0o700, owner: tuple[int, int] | None = None
) -> Path:
    """Make the directory ``relative`` in the private directory (its parent first, if it is
    two levels down) and return its path; :class:`OSError` if the engine cannot mount."""
    with _lock:
        private = _private_parent()
    if private is None:
        raise OSError("the engine cannot mount here (not root)")
    os.mkdir(relative, mode, dir_fd=private.writable)
    if owner is not None:
        os.chown(relative, *owner, dir_fd=private.writable, follow_symlinks=False)
    return private.path / relative


def mount_target(path: Path) -> str:
    """The name to mount on ``path`` (made by :func:`make_mount_point`) by: one that reaches
    the private directory through this process's own handle of it, not by its path."""
    private = _parent
    if private is None or private.pid != os.getpid():
        raise OSError(f"{path} is in no private directory of this process")
    return private.target(private.relative(path))


def own_view(path: str) -> bool:
    """Whether ``path`` is in a directory this process made in its private directory for a
    view (see :func:`make_mount_point`), not in a scratch tmpfs (numbered): a plan may bind it."""
    first = _in_private(path)
    return first is not None and not first.isdigit()


def _in_private(path: str) -> str | None:
    """The first part of ``path`` below this process's private directory (``None``: it is not
    below it)."""
    private = _parent
    if private is None or private.pid != os.getpid():
        return None
    prefix = f"{private.path}/"
    return path[len(prefix) :].partition("/")[0] if path.startswith(prefix) else None


def own_mount_point(path: str) -> bool:
    """Whether ``path`` is below this process's private directory (a view or scratch tmpfs)."""
    return _in_private(path) is not None


def shown_at(source: str, target: str, root: str) -> str | None:
    """Where a bind of the host's ``source`` (links resolved) at ``target`` shows the scratch
    root ``root`` (:data:`SCRATCH_ROOT`), which the sandbox must cover there; ``None`` if it
    does not; :class:`PolicyError` if ``source`` is inside it."""
    if source.startswith(root + "/"):
        raise PolicyError(
            f"{source} is inside {root}, where the engine keeps the private /tmp of every "
            "command: no sandbox may see it; remove it from readable_paths, writable_paths or "
            "the command's mounts"
        )
    if source not in ("/", root) and not root.startswith(source + "/"):
        return None
    return os.path.normpath(target.rstrip("/") + root[len(source.rstrip("/")) :])


def remove_mount_point(path: Path) -> None:
    """Remove the directory ``path`` made by :func:`make_mount_point` (not mounted on), and its
    parent if that is empty and not the private directory itself (a view's)."""
    private = _parent
    if private is None or private.pid != os.getpid():
        return
    relative = private.relative(path)
    with contextlib.suppress(OSError):
        os.rmdir(relative, dir_fd=private.writable)
        if "/" in relative:
            os.rmdir(os.path.dirname(relative), dir_fd=private.writable)


def unmount_later(path: Path) -> None:
    """Unmount ``path`` (a mount point under :func:`private_mount_dir`) in the background; it
    and its parent, if that is empty and not the private directory itself, are removed later."""
    _unmounter.submit(path)


class Scratch:
    """One command's tmpfs, holding the directories bound at ``/tmp`` and ``/dev/shm``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / "tmp"
        self.shm = root / "shm"

    @classmethod
    def create(cls, size: int, owner: tuple[int, int] = (0, 0)) -> Scratch | None:
        """A fresh tmpfs of ``size`` bytes whose root only ``owner`` (uid, gid) may enter, or
        ``None`` where the engine cannot mount one."""
        global _counter
        with _lock:
            if _private_parent() is None:
                return None
            _counter += 1
            name = str(_counter)
        try:
            root = make_mount_point(name)
        except OSError:
            return None
        options = f"size={size},mode=0700,uid={owner[0]},gid={owner[1]}"
        if not _mount("tmpfs", mount_target(root), "tmpfs", _MS_NOSUID | _MS_NODEV, options):
            remove_mount_point(root)
            return None
        try:
            _make_shared_dirs(mount_target(root))
        except OSError:
            _unmounter.submit(root)
            return None
        return cls(root)

    def full(self) -> bool:
        """Whether the command used (almost) all of the tmpfs."""
        stat = os.statvfs(self.root)
        return stat.f_bavail * stat.f_frsize < FULL_BELOW

    def release(self) -> None:
        """Unmount the tmpfs (what the command left there goes with it), in the background: an
        unmount waits for an RCU grace period, milliseconds the command's result need not wait."""
        _unmounter.submit(self.root)


def _make_shared_dirs(root: str) -> None:
    """Make ``tmp`` and ``shm`` (mode 1777) in the fresh tmpfs at ``root``, never changing the
    mode of anything else (its owner may already be a sandbox's user, there by another name)."""
    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in ("tmp", "shm"):
            os.mkdir(name, 0o700, dir_fd=top)
            made = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                           dir_fd=top)  # fmt: skip
            try:
                os.fchmod(made, 0o1777)
            finally:
                os.close(made)
    finally:
        os.close(top)


class _Unmounter:
    """One daemon thread unmounting released scratch tmpfs and views, then, once
    :data:`KEEP_EMPTIED` seconds have passed, removing the directories they were mounted on.

    Removing the directory of a mount detaches that mount's copies in every other mount
    namespace. A sandbox tool that copied the host's mounts a moment before (bubblewrap binding
    ``/`` or ``/tmp`` recursively, in this process or another) and is remounting each of them
    would then fail on the vanished one ("Unable to apply mount flags: remount
    .../cleanroom-scratch-.../view: No such file or directory"). Unmounting alone changes no
    other namespace: the private directory propagates nothing."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Path] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._emptied: collections.deque[tuple[float, Path]] = collections.deque()

    def submit(self, root: Path) -> None:
        self._queue.put(root)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="cleanroom-scratch-unmounter", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        while True:
            root = self._queue.get()
            if _parent is not None and _parent.pid == os.getpid():
                _libc.umount2(mount_target(root).encode(), _MNT_DETACH | _UMOUNT_NOFOLLOW)
            now = time.monotonic()
            self._emptied.append((now, root))
            while self._emptied and now - self._emptied[0][0] >= KEEP_EMPTIED:
                remove_mount_point(self._emptied.popleft()[1])


_unmounter = _Unmounter()


def _after_fork_in_child() -> None:
    """What the parent released is the parent's to unmount and remove."""
    global _unmounter
    _unmounter = _Unmounter()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _mount_points() -> list[str] | None:
    try:
        with open("/proc/self/mountinfo") as f:
            return [line.split()[4] for line in f]
    except OSError:
        return None


#: What :func:`_take_lock` answers for a lock file that is not there.
_MISSING = -1


def _take_lock(name: str, dir_fd: int | None = None) -> int | None:
    """The owner lock ``name`` taken (its owner is gone: a lock tells across PID namespaces,
    unlike a pid), :data:`_MISSING` if there is none, ``None`` if its owner lives or it
    cannot be told."""
    try:
        lock = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return _MISSING
    except OSError:
        return None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        return None
    return lock


def _drop_lock(name: str, lock: int, dir_fd: int | None = None) -> None:
    """Remove the owner lock ``name`` taken by :func:`_take_lock` (held as ``lock``)."""
    if lock == _MISSING:
        return
    with contextlib.suppress(OSError):
        os.unlink(name, dir_fd=dir_fd)
    os.close(lock)


def _unmount_below(top: str, points: list[str]) -> None:
    """Unmount everything at or below ``top`` (of this mount namespace), deepest first."""
    for point in sorted((p for p in points if p.startswith(top + "/")), reverse=True):
        _libc.umount2(point.encode(), _MNT_DETACH | _UMOUNT_NOFOLLOW)
    _libc.umount2(top.encode(), _MNT_DETACH | _UMOUNT_NOFOLLOW)


def _unmount_leftovers() -> None:
    """Unmount the private directories of processes that are gone (their owner lock is free),
    in :data:`SCRATCH_ROOT` and where earlier versions kept them, then remove the directories
    they were mounted on; the rest of :data:`SCRATCH_ROOT`'s leftovers go in the background."""
    points = _mount_points()
    if points is None:
        return
    for top in {p for p in points if os.path.dirname(p) == SCRATCH_ROOT}:
        lock = _take_lock(top + _LOCK_SUFFIX)  # none: a sweep removed it, its owner was gone
        if lock is None:
            continue
        _unmount_below(top, points)
        with contextlib.suppress(OSError):
            os.rmdir(top)  # empty once unmounted (rmdir follows no link)
        _drop_lock(top + _LOCK_SUFFIX, lock)
    _unmount_old_leftovers(points)
    # In the background: removing many directories can take the disk seconds.
    threading.Thread(target=_remove_litter, name="cleanroom-litter", daemon=True).start()


def _unmount_old_leftovers(points: list[str]) -> None:
    """Unmount the private directories an earlier version mounted in the host's ``/tmp`` whose
    owner is gone (the lock of their ``owner`` file is free) and remove their directories.
    Those without that file, or no mount of this namespace, are left: nothing tells whether
    their owner lives in another PID and mount namespace."""
    where = tempfile.gettempdir()
    for top in points:
        if os.path.dirname(top) != where or not os.path.basename(top).startswith(_OLD_PREFIX):
            continue
        lock = _take_lock(f"{top}/{_OLD_OWNER_LOCK}")
        if lock is None or lock == _MISSING:
            continue
        os.close(lock)
        _unmount_below(top, points)
        with contextlib.suppress(OSError):
            os.rmdir(top)


def _remove_litter() -> None:
    """Remove the directories in :data:`SCRATCH_ROOT` that no mount is on or below any more,
    that stood unchanged for a while and whose owner is gone (its lock is free or was removed),
    following no link, and the owner locks left without a directory. One process at a time
    does it (the others skip it): it can take the disk minutes."""
    points = _mount_points()
    if points is None:
        return
    try:
        root = open_scratch_root()
    except (OSError, ScratchRootError):
        return  # said when a private directory is made
    try:
        fcntl.flock(root, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with os.scandir(root) as entries:
            found = list(entries)
        names = {e.name for e in found}
        for entry in found:
            with contextlib.suppress(OSError):
                _remove_if_litter(root, entry, names, points)
    except OSError:
        pass  # another process is at it, or the directory cannot be read
    finally:
        os.close(root)


def _remove_if_litter(
    root: int, entry: os.DirEntry[str], names: set[str], points: list[str]
) -> None:
    """Remove ``entry`` of :data:`SCRATCH_ROOT` (open as ``root``) if it is litter."""
    st = entry.stat(follow_symlinks=False)
    if time.time() - st.st_mtime < _LITTER_AGE:
        return  # a lock is made a moment before its directory, a directory before its mount
    name = entry.name
    if name.endswith(_LOCK_SUFFIX):
        if name[: -len(_LOCK_SUFFIX)] in names:
            return  # judged with its directory
        lock = _take_lock(name, root)
        if lock is not None:
            _drop_lock(name, lock, root)
        return
    path = f"{SCRATCH_ROOT}/{name}"
    if not entry.is_dir(follow_symlinks=False):
        return
    if any(p == path or p.startswith(path + "/") for p in points):
        return
    lock = _take_lock(name + _LOCK_SUFFIX, root)
    if lock is None:
        return
    # Removes through descriptors, never following a link (shutil's safe path).
    shutil.rmtree(path, ignore_errors=True)  # below root-only directories
    _drop_lock(name + _LOCK_SUFFIX, lock, root)


def _remove_parent() -> None:
    private = _parent
    if private is not None and private.pid == os.getpid():
        _libc.umount2(private.target("").rstrip("/").encode(), _MNT_DETACH)
        with contextlib.suppress(OSError):
            private.path.rmdir()
        with contextlib.suppress(OSError):
            os.unlink(f"{private.path}{_LOCK_SUFFIX}")


atexit.register(_remove_parent)
