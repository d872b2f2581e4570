"""Globs over a task's directory, and content hashes of the files they match."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

SKIPPED_DIRS = frozenset({".git", ".ggen", ".hg", ".svn"})
CHUNK = 1024 * 1024


def _walk_files(root: Path, rel_dir: str) -> Iterable[str]:
    for dirpath, dirnames, filenames in os.walk(root / rel_dir):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
        base = Path(dirpath).relative_to(root)
        for name in filenames:
            yield (base / name).as_posix()


def expand(root: Path, patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """Files under ``root`` matched by ``patterns`` (``**`` recursive; ``!pat`` excludes).

    Returns (sorted relative POSIX paths, the positive patterns that matched nothing). A
    directory that matches stands for every file below it. ``.git`` and ``.ggen`` are never
    included.
    """
    included: set[str] = set()
    excluded: set[str] = set()
    unmatched: list[str] = []
    for pattern in patterns:
        negative = pattern.startswith("!")
        body = pattern[1:] if negative else pattern
        found: set[str] = set()
        for match in glob.glob(body, root_dir=root, recursive=True):
            rel = Path(match).as_posix()
            if any(part in SKIPPED_DIRS for part in Path(rel).parts):
                continue
            full = root / rel
            if full.is_dir():
                found.update(_walk_files(root, rel))
            elif full.is_file():
                found.add(rel)
        if negative:
            excluded |= found
        else:
            included |= found
            if not found:
                unmatched.append(pattern)
    return sorted(included - excluded), unmatched


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def hash_files(
    root: Path, files: Iterable[str], memo: HashMemo | None = None
) -> list[tuple[str, str]]:
    """(path, sha256) for each file, in the given order (through ``memo`` if given)."""
    if memo is None:
        return [(rel, sha256_file(root / rel)) for rel in files]
    return [(rel, memo.digest(root / rel)) for rel in files]


class HashMemo:
    """Content hashes remembered by file identity, so that unchanged inputs are not re-read.

    An entry is used only while the file's size, mtime, ctime and inode are those recorded (ctime
    cannot be set back by programs). Files changed in the last two seconds are never remembered,
    so a change within the file system's timestamp granularity cannot be missed.
    """

    RECENT_NS = 2_000_000_000

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._entries: dict[str, list[Any]] = {}
        self._dirty = False
        if path is not None:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                if isinstance(data, dict):
                    self._entries = {
                        k: v for k, v in data.items() if isinstance(v, list) and len(v) == 5
                    }
            except (OSError, ValueError):
                self._entries = {}

    def digest(self, full: Path) -> str:
        stat = full.stat()
        identity = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        key = str(full)
        with self._lock:
            known = self._entries.get(key)
        if known is not None and known[:4] == identity:
            return str(known[4])
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
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with self._lock:
            temp.write_text(json.dumps(self._entries), encoding="utf-8")
            self._dirty = False
        os.replace(temp, self.path)
