"""Workspace file digests before and after a test: which files its commands produced or changed.

The first :func:`take_snapshot` hashes every file. :func:`compare` then re-hashes only the files
whose ``lstat`` (inode, size, mtime, ctime) changed, plus those that were "racy" when the
snapshot was taken (changed within :data:`RACY_WINDOW_NS` of it, like git's racily-clean index
entries): a later write always moves ctime past that window, and ctime cannot be set by a
sandboxed process, so an unchanged stat means unchanged content.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

# Larger than the kernel's coarse timestamp tick (10 ms at HZ=100); filesystems with whole-second
# timestamps are handled by treating the whole second as racy.
RACY_WINDOW_NS = 100_000_000
_SECOND_NS = 1_000_000_000
_CHUNK = 1 << 20

StatKey = tuple[int, int, int, int]


@dataclass(frozen=True)
class FileState:
    digest: str  # sha256, hex
    stat_key: StatKey
    racy: bool


_NONE = FileState("", (0, 0, 0, 0), True)


@dataclass(frozen=True)
class Snapshot:
    """Every regular file and symlink under ``root``, keyed by relative POSIX path."""

    root: Path
    files: dict[str, FileState]
    taken_ns: int

    def digests(self) -> dict[str, str]:
        return {rel: state.digest for rel, state in self.files.items()}


@dataclass(frozen=True)
class WorkspaceChanges:
    """What happened to a workspace between a snapshot and now."""

    inputs: dict[str, str]
    outputs: dict[str, str]
    removed: tuple[str, ...]
    after: dict[str, str]

    def tree_digest(self) -> str:
        """``sha256:`` over sorted paths and digests; equals :meth:`Workspace.digest`."""
        return tree_digest(self.after)


def take_snapshot(root: str | os.PathLike[str]) -> Snapshot:
    """Hash every regular file and symlink under ``root`` (sockets, FIFOs, devices are skipped)."""
    return refresh(Snapshot(Path(root), {}, 0))


def refresh(before: Snapshot) -> Snapshot:
    """A new snapshot of ``before.root`` that re-reads only the files that may have changed."""
    taken_ns = time.time_ns()
    files: dict[str, FileState] = {}
    for rel, path, st in _walk(before.root):
        key = _stat_key(st)
        old = before.files.get(rel)
        if old is not None and not old.racy and old.stat_key == key:
            files[rel] = old
            continue
        digest = _hash_if_present(path, st)
        if digest is not None:
            files[rel] = FileState(digest, key, _is_racy(st, taken_ns))
    return Snapshot(before.root, files, taken_ns)


def compare(before: Snapshot) -> WorkspaceChanges:
    """Files added or changed since ``before`` (with new digests), and files removed."""
    now = refresh(before).digests()
    outputs = {rel: d for rel, d in sorted(now.items()) if before.files.get(rel, _NONE).digest != d}
    removed = tuple(sorted(set(before.files) - set(now)))
    return WorkspaceChanges(before.digests(), outputs, removed, now)


def tree_digest(digests: dict[str, str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(digests):
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0" + digests[rel].encode() + b"\n")
    return "sha256:" + h.hexdigest()


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 hex of a file as the snapshot records it (a symlink hashes its target's text)."""
    return _hash(os.fspath(path), os.lstat(path))


def _walk(base: Path) -> list[tuple[str, str, os.stat_result]]:
    found: list[tuple[str, str, os.stat_result]] = []
    stack = [("", os.fspath(base))]
    while stack:
        prefix, directory = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                rel = prefix + entry.name
                if stat.S_ISDIR(st.st_mode):
                    stack.append((rel + "/", entry.path))
                elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                    found.append((rel, entry.path, st))
    return found


def _hash(path: str, st: os.stat_result) -> str:
    if stat.S_ISLNK(st.st_mode):
        return hashlib.sha256(b"symlink:" + os.fsencode(os.readlink(path))).hexdigest()
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        if st.st_size < _CHUNK:  # the common case: one read (plus one to see the end)
            data = os.read(fd, st.st_size + 1)
            if len(data) <= st.st_size:
                return hashlib.sha256(data).hexdigest()
            h = hashlib.sha256(data)  # it grew since the stat: read on
        else:
            h = hashlib.sha256()
        while chunk := os.read(fd, _CHUNK):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def _hash_if_present(path: str, st: os.stat_result) -> str | None:
    """The digest, or ``None`` when the file vanished between listing and reading it."""
    try:
        return _hash(path, st)
    except FileNotFoundError:
        return None


def _stat_key(st: os.stat_result) -> StatKey:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _is_racy(st: os.stat_result, taken_ns: int) -> bool:
    window = RACY_WINDOW_NS if st.st_ctime_ns % _SECOND_NS else _SECOND_NS + RACY_WINDOW_NS
    return st.st_ctime_ns >= taken_ns - window
