"""Workspace file digests before and after a test: which files its commands produced or changed.

The first :func:`take_snapshot` hashes every file. :func:`compare` then re-hashes only the files
whose ``lstat`` (inode, size, mtime, ctime) changed, plus those that were "racy" when the
snapshot was taken (changed within :data:`RACY_WINDOW_NS` of it, like git's racily-clean index
entries): a later write always moves ctime past that window, and ctime cannot be set by a
sandboxed process, so an unchanged stat means unchanged content.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..host_files import NotRegularFileError, open_regular

if TYPE_CHECKING:
    from ..repeat.tree import Tree

# Larger than the kernel's coarse timestamp tick (10 ms at HZ=100); filesystems with whole-second
# timestamps are handled by treating the whole second as racy.
RACY_WINDOW_NS = 100_000_000
_SECOND_NS = 1_000_000_000
_CHUNK = 1 << 20

StatKey = tuple[int, int, int, int]


class FileState(NamedTuple):
    """A file's digest (sha256, hex), its stat key, and whether it was racy when read."""

    digest: str
    stat_key: StatKey
    racy: bool


_NONE = FileState("", (0, 0, 0, 0), True)


@dataclass(frozen=True)
class Snapshot:
    """Every regular file and symlink under ``root``, keyed by relative POSIX path."""

    root: Path
    files: dict[str, FileState]
    taken_ns: int
    #: Watching the workspace since the snapshot (``take_snapshot(..., watch=True)``).
    tree: Tree | None = field(default=None, compare=False, repr=False)

    def digests(self) -> dict[str, str]:
        return {rel: state.digest for rel, state in self.files.items()}

    def close(self) -> None:
        """Stop watching the workspace."""
        if self.tree is not None:
            self.tree.close()


@dataclass(frozen=True)
class WorkspaceChanges:
    """What happened to a workspace between a snapshot and now."""

    inputs: dict[str, str]
    outputs: dict[str, str]
    removed: tuple[str, ...]
    after: dict[str, str]

    @functools.cached_property
    def _tree_digest(self) -> str:
        return tree_digest(self.after)

    def tree_digest(self) -> str:
        """``sha256:`` over sorted paths and digests; equals :meth:`Workspace.digest`."""
        return self._tree_digest


def take_snapshot(root: str | os.PathLike[str], *, watch: bool = False) -> Snapshot:
    """Hash every regular file and symlink under ``root`` (sockets, FIFOs, devices are skipped).

    With ``watch``, the workspace is also watched from then on (inotify, when available), so
    that :func:`compare` need only look at the entries reported changed instead of walking it.
    """
    base = Path(root)
    taken_ns = time.time_ns()
    window = taken_ns - RACY_WINDOW_NS
    tree: Tree | None = None
    if watch:
        from ..repeat.tree import Tree

        tree = Tree(base)
        tree.read()
        listing = [
            (rel, os.path.join(base, rel), key[0], key[1], key[2], key[3], key[4])
            for rel, key in tree.entries.items()
            if stat.S_ISREG(key[0]) or stat.S_ISLNK(key[0])
        ]
    else:
        listing = _walk(base)
    files: dict[str, FileState] = {}
    for rel, path, mode, ino, size, mtime, ctime in listing:
        digest = _hash_if_present(path, mode, size)
        if digest is not None:
            racy = ctime >= (window if ctime % _SECOND_NS else window - _SECOND_NS)
            files[rel] = FileState(digest, (ino, size, mtime, ctime), racy)
    return Snapshot(base, files, taken_ns, tree)


def refresh(before: Snapshot) -> Snapshot:
    """A new snapshot of ``before.root`` that re-reads only the files that may have changed."""
    taken_ns = time.time_ns()
    files: dict[str, FileState] = {}
    for rel, path, mode, ino, size, mtime, ctime in _walk(before.root):
        key = (ino, size, mtime, ctime)
        old = before.files.get(rel)
        if old is not None and not old.racy and old.stat_key == key:
            files[rel] = old
            continue
        digest = _hash_if_present(path, mode, size)
        if digest is not None:
            files[rel] = FileState(digest, key, _is_racy(ctime, taken_ns))
    return Snapshot(before.root, files, taken_ns)


def compare(before: Snapshot) -> WorkspaceChanges:
    """Files added or changed since ``before`` (with new digests), and files removed. Reads
    only the entries the workspace's watch reported changed; without a trustworthy watch, one
    stat walk that re-reads only the files that may have changed (as :func:`refresh` does)."""
    old_files = before.files
    changed = before.tree.read() if before.tree is not None else None
    now: dict[str, str] = {}
    outputs: dict[str, str] = {}
    if changed is not None and before.tree is not None:
        entries = before.tree.entries
        now = before.digests()
        for rel in changed:
            key = entries.get(rel)
            digest = None
            if key is not None and (stat.S_ISREG(key[0]) or stat.S_ISLNK(key[0])):
                digest = _hash_if_present(os.path.join(before.root, rel), key[0], key[2])
            if digest is None:
                now.pop(rel, None)
                continue
            now[rel] = digest
            if digest != old_files.get(rel, _NONE).digest:
                outputs[rel] = digest
    else:
        for rel, path, mode, ino, size, mtime, ctime in _walk(before.root):
            old = old_files.get(rel, _NONE)
            if not old.racy and old.stat_key == (ino, size, mtime, ctime):
                now[rel] = old.digest
                continue
            digest = _hash_if_present(path, mode, size)
            if digest is not None:
                now[rel] = digest
                if digest != old.digest:
                    outputs[rel] = digest
    removed = tuple(sorted(old_files.keys() - now.keys()))
    return WorkspaceChanges(before.digests(), dict(sorted(outputs.items())), removed, now)


def tree_digest(digests: dict[str, str]) -> str:
    """``sha256:`` over each ``path NUL digest LF`` line, paths sorted."""
    lines = b"".join(
        b"%s\0%s\n" % (rel.encode("utf-8", "surrogateescape"), digests[rel].encode())
        for rel in sorted(digests)
    )
    return "sha256:" + hashlib.sha256(lines).hexdigest()


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 hex of a file as the snapshot records it (a symlink hashes its target's text)."""
    st = os.lstat(path)
    return _hash(os.fspath(path), st.st_mode, st.st_size)


Listed = tuple[str, str, int, int, int, int, int]  # rel, path, mode, ino, size, mtime, ctime


def _walk(base: Path) -> list[Listed]:
    found: list[Listed] = []
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
                    found.append(
                        (rel, entry.path, st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns,
                         st.st_ctime_ns)
                    )  # fmt: skip
    return found


def _hash(path: str, mode: int, size: int) -> str:
    if stat.S_ISLNK(mode):
        return hashlib.sha256(b"symlink:" + os.fsencode(os.readlink(path))).hexdigest()
    try:
        fd = open_regular(path)
    except NotRegularFileError as exc:  # swapped for a FIFO, device or link since the listing
        return hashlib.sha256(f"changed:{exc}".encode(errors="surrogateescape")).hexdigest()
    try:
        if size < _CHUNK:  # the common case: one read (plus one to see the end)
            data = os.read(fd, size + 1)
            if len(data) <= size:
                return hashlib.sha256(data).hexdigest()
            h = hashlib.sha256(data)  # it grew since the stat: read on
        else:
            h = hashlib.sha256()
        while chunk := os.read(fd, _CHUNK):
            h.update(chunk)
    finally:
        os.close(fd)
    return h.hexdigest()


def _hash_if_present(path: str, mode: int, size: int) -> str | None:
    """The digest, or ``None`` when the file vanished between listing and reading it."""
    try:
        return _hash(path, mode, size)
    except FileNotFoundError:
        return None


def _is_racy(ctime_ns: int, taken_ns: int) -> bool:
    window = RACY_WINDOW_NS if ctime_ns % _SECOND_NS else _SECOND_NS + RACY_WINDOW_NS
    return ctime_ns >= taken_ns - window
