"""Globs over a task's directory, and content hashes of the files they match."""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

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


def hash_files(root: Path, files: Iterable[str]) -> list[tuple[str, str]]:
    """(path, sha256) for each file, in the given order."""
    return [(rel, sha256_file(root / rel)) for rel in files]
