"""A directory tree's entries (their ``lstat`` keys), kept current from the kernel's inotify
events where it can, so that a large workspace is not stat'ed whole for every checked command.

inotify reports every change made through the file system to a watched directory's entries,
whichever mount namespace or container made it (a bind mount is the same inode), in order,
before the writing call returns. Where it cannot be trusted the tree is scanned instead, and
the caller told so: inotify unavailable or out of watches, lost events (queue overflow), a
directory renamed (its watches' paths would be stale). Not reported by inotify: a file changed
only through a shared memory map (no write call); build tools write through ``write`` or map
files they create, so the creation is seen.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
import struct
import time
import weakref
from pathlib import Path

from .libc import libc
from .treediff import StatKey, scan, stat_changes, stat_key

_IN_MODIFY = 0x2
_IN_ATTRIB = 0x4
_IN_CLOSE_WRITE = 0x8
_IN_MOVED_FROM = 0x40
_IN_MOVED_TO = 0x80
_IN_CREATE = 0x100
_IN_DELETE = 0x200
_IN_DELETE_SELF = 0x400
_IN_MOVE_SELF = 0x800
_IN_Q_OVERFLOW = 0x4000
_IN_IGNORED = 0x8000
_IN_ONLYDIR = 0x1000000
_IN_DONT_FOLLOW = 0x2000000
_IN_ISDIR = 0x40000000
_IN_NONBLOCK = os.O_NONBLOCK
_IN_CLOEXEC = os.O_CLOEXEC
_MASK = (
    _IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM | _IN_MOVED_TO | _IN_CREATE
    | _IN_DELETE | _IN_DELETE_SELF | _IN_MOVE_SELF | _IN_ONLYDIR | _IN_DONT_FOLLOW
)  # fmt: skip
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len


def _lib() -> ctypes.CDLL | None:
    found = libc()
    return found if found is not None and hasattr(found, "inotify_init1") else None


class _LostTrackError(Exception):
    """The events cannot say what changed: scan instead."""


class _Watch:
    """One inotify instance watching every directory of a tree."""

    def __init__(self, root: Path, libc: ctypes.CDLL, fd: int) -> None:
        self.root = root
        self.libc = libc
        self.fd = fd
        self.dirs: dict[int, str] = {}  # watch descriptor -> directory, relative ("" = root)
        # Closed when dropped unclosed (a test stopped midway): inotify instances are few.
        self._closer = weakref.finalize(self, _close_quietly, fd)

    @classmethod
    def open(cls, root: Path) -> _Watch | None:
        libc = _lib()
        if libc is None:
            return None
        fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        return None if fd < 0 else cls(root, libc, fd)

    def add(self, rel: str) -> None:
        path = os.fsencode(self.root / rel if rel else self.root)
        wd = self.libc.inotify_add_watch(self.fd, path, _MASK)
        if wd < 0:
            raise _LostTrackError(os.strerror(ctypes.get_errno()))
        self.dirs[wd] = rel

    def events(self) -> list[tuple[int, int, str]]:
        """``(wd, mask, name)`` of every event queued so far."""
        found: list[tuple[int, int, str]] = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return found
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, size = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size
                name = os.fsdecode(data[offset : offset + size].rstrip(b"\0"))
                offset += size
                found.append((wd, mask, name))

    def close(self) -> None:
        self._closer()


class Tree:
    """The entries under ``root`` as of the last :meth:`read` (begun at ``taken_ns``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: dict[str, StatKey] = {}
        self.taken_ns = 0
        self._watch: _Watch | None = None

    @property
    def watched(self) -> bool:
        return self._watch is not None

    def read(self) -> set[str] | None:
        """Bring :attr:`entries` up to date (a new dict). Returns the entries that changed since
        the last read, or ``None`` when this read had to scan the whole tree (first read, no
        inotify, events that cannot be trusted, hard links): then the caller compares the stat
        keys itself (:func:`~.treediff.stat_changes`)."""
        if self._watch is not None:
            self.taken_ns = time.time_ns()
            try:
                return self._apply(self._watch.events())
            except (_LostTrackError, OSError):
                self.close()
        self.taken_ns = time.time_ns()
        self._watch = _Watch.open(self.root)
        try:
            self.entries = self._scan_watching("")
        except _LostTrackError:
            self.close()
            self.entries = scan(self.root)
        if any(_linked(key) for key in self.entries.values()):
            self.close()  # a hard link's other names are not reported: keep scanning
        return None

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def _scan_watching(self, top: str) -> dict[str, StatKey]:
        """Like :func:`scan` under ``top``, each directory watched before it is listed (so no
        change can fall between the listing and the watch)."""
        found: dict[str, StatKey] = {}
        stack = [top]
        while stack:
            rel = stack.pop()
            if self._watch is not None:
                self._watch.add(rel)
            prefix = rel + "/" if rel else ""
            with os.scandir(self.root / rel if rel else self.root) as entries:
                for entry in entries:
                    st = entry.stat(follow_symlinks=False)
                    found[prefix + entry.name] = stat_key(st)
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(prefix + entry.name)
        return found

    def _apply(self, events: list[tuple[int, int, str]]) -> set[str]:
        assert self._watch is not None
        changed: set[str] = set()
        created_dirs: list[str] = []
        for wd, mask, name in events:
            if mask & _IN_Q_OVERFLOW:
                raise _LostTrackError("events were lost")
            if mask & _IN_IGNORED:
                self._watch.dirs.pop(wd, None)
                continue
            if mask & _IN_MOVE_SELF or (
                mask & _IN_ISDIR and mask & (_IN_MOVED_FROM | _IN_MOVED_TO)
            ):
                raise _LostTrackError("a directory was renamed")
            directory = self._watch.dirs.get(wd)
            if directory is None or mask & _IN_DELETE_SELF:
                continue  # a directory removed: its parent reports the removal
            rel = f"{directory}/{name}" if directory and name else name or directory
            if rel:
                changed.add(rel)
            if mask & _IN_CREATE and mask & _IN_ISDIR:
                created_dirs.append(rel)
        entries = dict(self.entries)  # replaced, not changed: a failed update leaves it whole
        for rel in sorted(changed):
            try:
                entries[rel] = stat_key(os.lstat(self.root / rel))
            except FileNotFoundError:
                old = entries.pop(rel, None)
                if old is not None and stat.S_ISDIR(old[0]):
                    gone = [r for r in entries if r.startswith(rel + "/")]
                    for r in gone:
                        del entries[r]
                    changed.update(gone)
        for rel in created_dirs:  # watched now; what was written there before is listed
            if rel in entries and stat.S_ISDIR(entries[rel][0]):
                try:
                    inside = self._scan_watching(rel)
                except FileNotFoundError:
                    continue
                entries.update(inside)
                changed.update(inside)
        if any(_linked(entries[rel]) for rel in changed if rel in entries):
            self.close()  # a hard link's other names are not reported: scan from now on
        self.entries = entries
        return changed


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _linked(key: StatKey) -> bool:
    return stat.S_ISREG(key[0]) and key[5] > 1


def changes_since(tree: Tree, since_ns: int) -> set[str]:
    """Read ``tree`` and return what changed since its last reading: from inotify, else by
    comparing stat keys (racy relative to ``since_ns``, no earlier than the last reading)."""
    before = tree.entries
    changed = tree.read()
    return stat_changes(before, tree.entries, since_ns) if changed is None else changed
