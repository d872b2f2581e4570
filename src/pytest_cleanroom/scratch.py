"""A command's private ``/tmp`` and ``/dev/shm``: one tmpfs of ``max_disk`` bytes for both.

As root the engine mounts that tmpfs on the host, under a private directory of its own (bound
onto itself and made private, so the mounts propagate nowhere), and the sandbox binds its ``tmp``
and ``shm`` directories: the two share one budget, and once the command has ended the engine
sees whether it filled it (reported as the ``disk`` limit) before unmounting it. Without root
each gets a tmpfs of half of ``max_disk`` inside the sandbox: bounded together, but a full one
cannot be told from outside. Mounts left by a process that died are unmounted by the next one.

The private directory may be crossed by other users (a sandbox tool running as the sandbox's
unprivileged user must reach what it binds) but not listed; each tmpfs in it is reachable by its
owner only: root, or the unprivileged user of the command it belongs to.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import os
import queue
import tempfile
import threading
import time
from pathlib import Path

_MS_BIND = 4096
_MS_PRIVATE = 1 << 18
_MS_NOSUID = 2
_MS_NODEV = 4
_MNT_DETACH = 2
#: Free space under which a scratch tmpfs counts as filled (tmpfs allocates whole pages).
FULL_BELOW = 64 * 1024
_PREFIX = "cleanroom-scratch-"
#: Seconds an unmounted scratch tmpfs's or view's directory is kept before it is removed (see
#: :class:`_Unmounter`): far longer than a sandbox tool takes to set up its mounts.
KEEP_EMPTIED = 30.0

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_lock = threading.Lock()
_parent: tuple[int, Path] | None = None
_counter = 0


def separate_tmpfs_size(max_disk: int | None, *, private_tmp: bool) -> int | None:
    """The size of each of ``/tmp`` and ``/dev/shm`` when they cannot share one tmpfs:
    ``max_disk`` split between them, so that together they never hold more."""
    if max_disk is None or not private_tmp:
        return max_disk
    return max_disk // 2


def _mount(source: str | None, target: Path, fstype: str | None, flags: int, data: str) -> bool:
    result: int = _libc.mount(
        source.encode() if source else None,
        str(target).encode(),
        fstype.encode() if fstype else None,
        flags,
        data.encode() if data else None,
    )
    return result == 0


def _private_parent() -> Path | None:
    """This process's directory for scratch mounts, made once (``None``: cannot mount here)."""
    global _parent
    if _parent is not None and _parent[0] == os.getpid():
        return _parent[1]
    if os.geteuid() != 0:
        return None
    _unmount_leftovers()
    path = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-"))
    path.chmod(0o711)
    bound = _mount(str(path), path, None, _MS_BIND, "")
    if not (bound and _mount(None, path, None, _MS_PRIVATE, "")):
        _libc.umount2(str(path).encode(), _MNT_DETACH)
        path.rmdir()
        return None
    _parent = (os.getpid(), path)
    return path


def private_mount_dir() -> Path | None:
    """This process's private directory for mounts (``None``: it cannot mount)."""
    with _lock:
        return _private_parent()


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
            parent = _private_parent()
            if parent is None:
                return None
            _counter += 1
            root = parent / str(_counter)
        root.mkdir()
        options = f"size={size},mode=0700,uid={owner[0]},gid={owner[1]}"
        if not _mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, options):
            root.rmdir()
            return None
        scratch = cls(root)
        for directory in (scratch.tmp, scratch.shm):
            directory.mkdir()
            directory.chmod(0o1777)
        return scratch

    def full(self) -> bool:
        """Whether the command used (almost) all of the tmpfs."""
        stat = os.statvfs(self.root)
        return stat.f_bavail * stat.f_frsize < FULL_BELOW

    def release(self) -> None:
        """Unmount the tmpfs (what the command left there goes with it), in the background: an
        unmount waits for an RCU grace period, milliseconds the command's result need not wait."""
        _unmounter.submit(self.root)


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
            _libc.umount2(str(root).encode(), _MNT_DETACH)
            now = time.monotonic()
            self._emptied.append((now, root))
            while self._emptied and now - self._emptied[0][0] >= KEEP_EMPTIED:
                _remove_mount_point(self._emptied.popleft()[1])


def _remove_mount_point(root: Path) -> None:
    """Remove an emptied mount point, and its parent if that is empty and not the private
    directory itself (a view's)."""
    with contextlib.suppress(OSError):
        root.rmdir()
        if _parent is not None and root.parent != _parent[1]:
            root.parent.rmdir()


_unmounter = _Unmounter()


def _after_fork_in_child() -> None:
    """What the parent released is the parent's to unmount and remove."""
    global _unmounter
    _unmounter = _Unmounter()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _unmount_leftovers() -> None:
    """Unmount the scratch directories of processes that are gone."""
    try:
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
    except OSError:
        return
    tops = {p for p in points if os.path.basename(p).startswith(_PREFIX)}
    for top in tops:
        owner = os.path.basename(top)[len(_PREFIX) :].partition("-")[0]
        if owner.isdigit() and Path(f"/proc/{owner}").exists():
            continue
        for point in sorted((p for p in points if p.startswith(top + "/")), reverse=True):
            _libc.umount2(point.encode(), _MNT_DETACH)
        _libc.umount2(top.encode(), _MNT_DETACH)
        _remove_empty_tree(Path(top))


def _remove_empty_tree(top: Path) -> None:
    """Remove ``top`` and the empty directories below it (mount points: two levels at most)."""
    with contextlib.suppress(OSError):
        for child in top.iterdir():
            with contextlib.suppress(OSError):
                for grandchild in child.iterdir():
                    grandchild.rmdir()
            child.rmdir()
        top.rmdir()


def _remove_parent() -> None:
    if _parent is not None and _parent[0] == os.getpid():
        _libc.umount2(str(_parent[1]).encode(), _MNT_DETACH)
        _remove_empty_tree(_parent[1])


atexit.register(_remove_parent)
