"""A command's private ``/tmp`` and ``/dev/shm``: one tmpfs of ``max_disk`` bytes for both.

As root the engine mounts that tmpfs on the host, under a private directory of its own (a small
read-only tmpfs, made private, so the mounts propagate nowhere; see :class:`_Private`: a
sandbox that sees it, even as root without capabilities, can change nothing in it, and the
engine mounts through its own handle of it, never through a path), and the sandbox binds its ``tmp``
and ``shm`` directories: the two share one budget, and once the command has ended the engine
sees whether it filled it (reported as the ``disk`` limit) before unmounting it. Without root
each gets a tmpfs of half of ``max_disk`` inside the sandbox: bounded together, but a full one
cannot be told from outside. Mounts left by a process that died (its owner lock is free) are
unmounted by the next one.

The private directory may be crossed by other users (a sandbox tool running as the sandbox's
unprivileged user must reach what it binds) but not listed; each tmpfs in it is reachable by its
owner only: root, or the unprivileged user of the command it belongs to.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import fcntl
import os
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path

_MS_PRIVATE = 1 << 18
_MS_NOSUID = 2
_MS_NODEV = 4
_MNT_DETACH = 2
_UMOUNT_NOFOLLOW = 8
#: Free space under which a scratch tmpfs counts as filled (tmpfs allocates whole pages).
FULL_BELOW = 64 * 1024
_PREFIX = "cleanroom-scratch-"
#: The file in the private directory whose lock its owner holds for as long as it lives.
_OWNER_LOCK = "owner"
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
    read-only mount itself), never by a path someone else could have swapped."""

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


def _make_private() -> _Private:
    """Mount a fresh private directory (see :class:`_Private`); :class:`OSError` if it cannot."""
    path = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
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
        # Locked before anyone can see the directory: a sweep never finds it unowned.
        lock = os.open(_OWNER_LOCK, os.O_CREAT | os.O_RDONLY | os.O_CLOEXEC, 0o600, dir_fd=mounted)
        fds.append(lock)
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Read-only before it is attached: every copy of it anywhere is read-only too.
        _set_attributes(mounted, _MOUNT_ATTR_RDONLY, 0)
        syscall("move_mount", _SYS_MOVE_MOUNT, mounted, b"", -100, os.fsencode(path),
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
        with contextlib.suppress(OSError):
            path.rmdir()
        raise
    return _Private(os.getpid(), path, mounted, writable, lock)


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


def _owner_alive(top: str) -> bool:
    """Whether the process that made the private directory ``top`` still lives: it holds the
    lock of its owner file for life (a lock tells across PID namespaces, unlike a pid)."""
    try:
        lock = os.open(f"{top}/{_OWNER_LOCK}", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:  # made by an earlier version: only its pid tells
        owner = os.path.basename(top)[len(_PREFIX) :].partition("-")[0]
        return not owner.isdigit() or Path(f"/proc/{owner}").exists()
    except OSError:
        return True  # cannot tell: leave it
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(lock)
    return False


def _unmount_leftovers() -> None:
    """Unmount the private directories of processes that are gone, then remove the directories
    they were mounted on and those of earlier runs that are no mount point any more."""
    points = _mount_points()
    if points is None:
        return
    tops = {p for p in points if os.path.basename(p).startswith(_PREFIX)}
    for top in tops:
        if _owner_alive(top):
            continue
        for point in sorted((p for p in points if p.startswith(top + "/")), reverse=True):
            _libc.umount2(point.encode(), _MNT_DETACH | _UMOUNT_NOFOLLOW)
        _libc.umount2(top.encode(), _MNT_DETACH | _UMOUNT_NOFOLLOW)
        with contextlib.suppress(OSError):
            os.rmdir(top)  # empty once unmounted (rmdir follows no link)
    # In the background: removing many directories can take the disk seconds.
    threading.Thread(
        target=_remove_litter, args=(tempfile.gettempdir(),), name="cleanroom-litter", daemon=True
    ).start()


def _remove_litter(where: str) -> None:
    """Remove the scratch directories in ``where`` that no mount is on or below any more and
    that stood unchanged for a while (what an earlier run's sandbox planted in them too),
    following no link: the mounts of their owners are gone, nothing of theirs is left. One
    process at a time does it (the others skip it): it can take the disk minutes."""
    points = _mount_points()
    if points is None:
        return
    try:
        guard = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with os.scandir(where) as entries:
            found = [e for e in entries if e.name.startswith(_PREFIX)]
        for entry in found:
            if any(p == entry.path or p.startswith(entry.path + "/") for p in points):
                continue
            with contextlib.suppress(OSError):
                st = entry.stat(follow_symlinks=False)
                if not entry.is_dir(follow_symlinks=False) or st.st_uid != os.geteuid():
                    continue
                owner = entry.name[len(_PREFIX) :].partition("-")[0]
                if time.time() - st.st_mtime < _LITTER_AGE or Path(f"/proc/{owner}").exists():
                    continue
                # Removes through descriptors, never following a link (shutil's safe path).
                shutil.rmtree(entry.path, ignore_errors=True)
    except OSError:
        pass  # another process is at it, or the directory cannot be read
    finally:
        os.close(guard)


def _remove_parent() -> None:
    private = _parent
    if private is not None and private.pid == os.getpid():
        _libc.umount2(private.target("").rstrip("/").encode(), _MNT_DETACH)
        with contextlib.suppress(OSError):
            private.path.rmdir()


atexit.register(_remove_parent)
