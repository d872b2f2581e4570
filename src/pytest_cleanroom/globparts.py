"""The segments of a relative glob or path, and the plainest globs' matching, without :mod:`re`.

:mod:`pytest_cleanroom.globwalk` compiles regular expressions; the lifecycle's cache-hit fast path
checks paths and ``DIR/**`` output globs with these functions alone.
"""

from __future__ import annotations


def segments(pattern: str) -> list[str] | None:
    """The segments of a relative ``pattern`` (``.`` and empty ones dropped); ``None`` for an
    absolute pattern or one with a ``..`` segment, which could leave the root."""
    if pattern.startswith("/") or "\0" in pattern:
        return None
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return parts


def has_magic(segment: str) -> bool:
    """Whether ``segment`` holds a wildcard."""
    return "*" in segment or "?" in segment or "[" in segment


def plain_matches(path: str, pattern: str) -> bool | None:
    """What :func:`pytest_cleanroom.globwalk.matches` answers for a ``DIR/**`` ``pattern`` without
    wildcards in ``DIR`` (every path below ``DIR``); ``None`` for any other pattern."""
    parts = segments(pattern)
    if not parts or parts[-1] != "**" or any(has_magic(p) for p in parts[:-1]):
        return None
    directory = "/".join(parts[:-1])
    return not directory or path.startswith(directory + "/")
