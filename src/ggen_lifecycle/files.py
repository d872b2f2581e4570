"""Globs over a task's directory, and content hashes of the files they match."""

from __future__ import annotations

import os
import time
from _thread import allocate_lock

from . import _jsonc
from ._digest import LARGE, for_size

TYPE_CHECKING = False  # typing itself is not imported: the cache-hit fast path loads this module
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path
    from typing import Any


SKIPPED_DIRS = frozenset({".git", ".ggen", ".hg", ".svn"})
CHUNK = LARGE  # a file read in one block below this is hashed without OpenSSL
#: How many runs' log directories ``.ggen/logs`` keeps.
KEEP_LOG_RUNS = 20


def _walk_files(root: str, rel_dir: str) -> Iterable[str]:
    """Every file below ``root/rel_dir``, as paths relative to ``root`` (plain strings: this runs
    for every input file of every task, and pathlib costs several times more)."""
    rel_dir = rel_dir.rstrip("/")
    start = os.path.join(root, rel_dir) if rel_dir else root
    for dirpath, dirnames, filenames in os.walk(start):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        base = os.path.relpath(dirpath, root)
        prefix = "" if base == "." else base + "/"
        for name in filenames:
            yield prefix + name


def _plain_directory(body: str) -> str | None:
    """``dir`` for a pattern ``dir/**`` without wildcards in ``dir``: it means every file below
    ``dir`` (what the glob would give, since a matched directory stands for all its files)."""
    if not body.endswith("/**"):
        return None
    directory = body[:-3]
    if not directory or any(c in directory for c in "*?[") or directory.startswith("/"):
        return None
    if any(part in SKIPPED_DIRS or part == ".." for part in directory.split("/")):
        return None
    return directory


def expand(root: Path | str, patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Files under ``root`` matched by ``patterns`` (``**`` recursive; ``!pat`` excludes).

    Returns (sorted relative POSIX paths, the positive patterns that matched nothing). A
    directory that matches stands for every file below it. ``.git`` and ``.ggen`` are never
    included.
    """
    base = str(root)
    included: set[str] = set()
    excluded: set[str] = set()
    unmatched: list[str] = []
    for pattern in patterns:
        negative = pattern.startswith("!")
        body = pattern[1:] if negative else pattern
        found: set[str] = set()
        directory = _plain_directory(body)
        if directory is not None and os.path.isdir(os.path.join(base, directory)):
            found.update(_walk_files(base, directory))
        else:
            _glob_files(base, body, found)
        if negative:
            excluded |= found
        else:
            included |= found
            if not found:
                unmatched.append(pattern)
    return sorted(included - excluded), unmatched


def _glob_files(root: str, body: str, found: set[str]) -> None:
    from pytest_cleanroom import globwalk  # plain ``dir/**`` patterns never need it

    walked: set[str] = set()
    for match in sorted(globwalk.iglob(root, body, skip=SKIPPED_DIRS)):
        rel = os.path.normpath(match)
        parts = rel.split("/")
        if any("/".join(parts[:i]) in walked for i in range(1, len(parts))):
            continue  # below a directory already walked: found already
        full = os.path.join(root, rel)
        if os.path.islink(full) and os.path.isdir(full):
            continue  # a link to a directory is not walked (it may lead back up, or out)
        if os.path.isdir(full):
            walked.add(rel)
            found.update(_walk_files(root, rel))
        elif os.path.isfile(full):
            found.add(rel)


def named(directory: Path, prefix: str, suffix: str = "") -> list[Path]:
    """The entries of ``directory`` whose names start with ``prefix`` and end with ``suffix``,
    sorted (none when it is missing); what a glob ``PREFIX*SUFFIX`` gives, without compiling
    one."""
    return [directory / name for name in names(directory, prefix, suffix)]


def names(directory: str | os.PathLike[str], prefix: str, suffix: str = "") -> list[str]:
    """The names :func:`named` gives the paths of (no :mod:`pathlib` needed)."""
    try:
        found = os.listdir(directory)
    except OSError:
        return []
    size = len(prefix) + len(suffix)
    return [
        name
        for name in sorted(found)
        if len(name) >= size and name.startswith(prefix) and name.endswith(suffix)
    ]


def remove_tree(path: Path | str) -> None:
    """Remove ``path`` and everything below it, ignoring errors (shutil is imported here only:
    a run of cache hits removes nothing, and shutil loads the compression modules)."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def prune_logs(logs: str | os.PathLike[str]) -> None:
    """Remove all but the newest :data:`KEEP_LOG_RUNS` run directories of ``logs``."""
    try:
        with os.scandir(logs) as entries:
            runs = sorted(e.path for e in entries if e.is_dir())
    except OSError:
        return
    for old in runs[:-KEEP_LOG_RUNS]:
        remove_tree(old)


def sha256_file(path: Path | str) -> str:
    """The sha256 of the file at ``path`` (read once, block by block)."""
    with open(path, "rb") as handle:
        block = handle.read(CHUNK)
        h = for_size(len(block))  # less than a whole block: the whole file
        h.update(block)
        while block := handle.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def hash_files(
    root: Path | str, files: Iterable[str], memo: HashMemo | None = None
) -> list[tuple[str, str]]:
    """(path, sha256) for each file, in the given order (through ``memo`` if given)."""
    base = str(root)
    if memo is None:
        return [(rel, sha256_file(os.path.join(base, rel))) for rel in files]
    rels = list(files)
    if not rels:
        return []
    # each input's stat from the task's directory: the kernel walks the short relative path only
    dir_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return [
            (rel, memo.digest(os.path.join(base, rel), os.stat(rel, dir_fd=dir_fd))) for rel in rels
        ]
    finally:
        os.close(dir_fd)


class HashMemo:
    """Content hashes remembered by file identity, so that unchanged inputs are not re-read.

    An entry is used only while the file's size, mtime, ctime and inode are those recorded (ctime
    cannot be set back by programs). Files changed in the last two seconds are never remembered,
    so a change within the file system's timestamp granularity cannot be missed.
    """

    RECENT_NS = 2_000_000_000

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = path
        self._lock = allocate_lock()
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        if path is not None:
            try:
                with open(path, encoding="utf-8") as handle:
                    data = _jsonc.loads(handle.read())
                if isinstance(data, dict):
                    self._entries = {
                        k: v for k, v in data.items() if isinstance(v, list) and len(v) == 5
                    }
            except (OSError, ValueError, RecursionError):
                self._entries = {}

    def digest(self, full: Path | str, stat: os.stat_result | None = None) -> str:
        """The sha256 of the file at ``full`` (whose ``os.stat`` is ``stat``, if given)."""
        key = os.fspath(full)
        stat = os.stat(key) if stat is None else stat
        known = self._entries.get(key)  # one lookup: atomic without the lock
        if (
            known is not None
            and known[0] == stat.st_size
            and known[1] == stat.st_mtime_ns
            and known[2] == stat.st_ctime_ns
            and known[3] == stat.st_ino
        ):
            return str(known[4])
        identity = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        digest = sha256_file(full)
        if time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) > self.RECENT_NS:
            with self._lock:
                self._entries[key] = [*identity, digest]
                self._dirty = True
        return digest

    def save(self) -> None:
        """Write the memo (atomically) if anything was learnt."""
        if self.path is None or not self._dirty:
            return
        from .state import atomic_write

        with self._lock:
            text = _jsonc.dumps(self._entries)
            self._dirty = False
        atomic_write(self.path, text)
