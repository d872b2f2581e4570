"""Globs with ``**`` that end on any tree: no directory symlink is followed by ``**``, and each
directory is visited at most once per position in the pattern.

:func:`glob.glob` with ``recursive=True`` follows symlinks to directories, so two links to an
ancestor make it walk an exponential number of paths (it ends only when paths grow too long).
Here ``**`` descends real directories only, and repeated ``**`` segments (``a/**/**/b``) cost
no more than one. Elsewhere the rules are :mod:`glob`'s: ``*``, ``?`` and ``[...]`` match within
one path segment, names starting with ``.`` are matched only by a segment that starts with
``.``, and a literal segment may be a symlink.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Collection, Iterator
from functools import lru_cache

from .globparts import has_magic, plain_matches, segments

__all__ = ["has_magic", "iglob", "matches", "segments"]


@lru_cache(maxsize=512)
def _segment_regex(segment: str) -> re.Pattern[str]:
    return re.compile(fnmatch.translate(segment))


def _segment_matches(segment: str, name: str) -> bool:
    if name.startswith(".") and not segment.startswith("."):
        return False
    return _segment_regex(segment).match(name) is not None


def _is_real_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _scan(root: str, rel: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def iglob(root: str, pattern: str, skip: Collection[str] = ()) -> Iterator[str]:
    """Paths (relative to ``root``, files and directories) that ``pattern`` matches.

    Directories named in ``skip`` are neither entered nor matched. An absolute pattern or one with
    ``..`` matches nothing (see :func:`segments`).
    """
    parts = segments(pattern)
    if not parts:
        return
    seen: set[tuple[str, int]] = set()
    stack: list[tuple[str, int]] = [("", 0)]
    while stack:
        rel, index = stack.pop()
        if (rel, index) in seen:
            continue
        seen.add((rel, index))
        if index == len(parts):
            if rel:
                yield rel
            continue
        segment = parts[index]
        last = index == len(parts) - 1
        if segment == "**":
            stack.append((rel, index + 1))  # zero directories
            for entry in reversed(_scan(root, rel)):
                if entry.name in skip or entry.name.startswith("."):
                    continue
                if _is_real_dir(entry):
                    stack.append((_join(rel, entry.name), index))
                elif last:
                    yield _join(rel, entry.name)
        elif not has_magic(segment):
            path = _join(rel, segment)
            full = os.path.join(root, path)
            if segment in skip:
                continue
            if last and os.path.lexists(full):
                yield path
            elif not last and os.path.isdir(full):
                stack.append((path, index + 1))
        else:
            for entry in reversed(_scan(root, rel)):
                if entry.name in skip or not _segment_matches(segment, entry.name):
                    continue
                path = _join(rel, entry.name)
                if last:
                    yield path
                elif os.path.isdir(os.path.join(root, path)):
                    stack.append((path, index + 1))


def _segment_source(segment: str) -> str:
    """A regular expression for one glob segment that never crosses ``/``."""
    out: list[str] = []
    i = 0
    while i < len(segment):
        char = segment[i]
        i += 1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            close = segment.find("]", i + 1 if segment[i : i + 1] in ("!", "]") else i)
            if close < 0:
                out.append(re.escape(char))
                continue
            body = segment[i:close].replace("\\", "\\\\")
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"(?!/)[{body}]")
            i = close + 1
        else:
            out.append(re.escape(char))
    return "".join(out)


@lru_cache(maxsize=512)
def _pattern_regex(pattern: str) -> re.Pattern[str] | None:
    parts = segments(pattern)
    if parts is None:
        return None
    source = ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            source += ".*" if last else "(?:[^/]+/)*"
        else:
            source += _segment_source(part) + ("" if last else "/")
    return re.compile(source + r"\Z", re.DOTALL)


def matches(path: str, pattern: str) -> bool:
    """Whether relative ``path`` is matched by ``pattern``, or lies below a directory it matches
    (a matched directory stands for every file below it)."""
    plain = plain_matches(path, pattern)
    if plain is not None:
        return plain
    return _regex_matches(path, pattern)


def _regex_matches(path: str, pattern: str) -> bool:
    """:func:`matches` through the pattern's regular expression (any pattern)."""
    regex = _pattern_regex(pattern)
    if regex is None:
        return False
    parts = path.split("/")
    return any(regex.match("/".join(parts[:i])) for i in range(1, len(parts) + 1))
