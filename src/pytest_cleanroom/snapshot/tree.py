"""A reviewable text rendering of a workspace: every directory, file and symlink with its mode,
the sha256 and size of each file, and the text of small text files.

::

    dir  0755 src
    file 0644 src/app.py (21 bytes, sha256 9f86d0...)
      | print("hello")
    link      latest -> src/app.py
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from ..host_files import NotRegularFileError, kind, open_regular, show_name

#: Left out of a tree by default: interpreter caches, whose bytes vary with the Python that wrote
#: them, and the engine's ``HOME`` inside the workspace (``environment.HOME_DIR``), where tools
#: keep their caches.
DEFAULT_EXCLUDE: tuple[str, ...] = ("__pycache__", "*.pyc", ".pytest_cache", ".home")
#: Files up to this size whose bytes are UTF-8 text are shown line by line.
DEFAULT_MAX_TEXT_BYTES = 4096

TextNormaliser = Callable[[str], str]


def workspace_tree(
    root: str | os.PathLike[str],
    *,
    normalise: TextNormaliser | None = None,
    exclude: Iterable[str] = DEFAULT_EXCLUDE,
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
) -> str:
    """The tree under ``root`` as text, entries sorted by path.

    ``exclude`` holds glob patterns matched against each entry's name and its relative path
    (an excluded directory hides everything under it). When ``normalise`` changes a text file,
    the text shown is the normalised one and so is the digest, marked ``normalised sha256``, so
    that a file that embeds a temporary path still gives the same tree on every machine.
    """
    base = Path(os.fspath(root))
    if not base.is_dir():
        raise NotADirectoryError(f"cannot snapshot {base}: not a directory")
    patterns = tuple(exclude)
    lines: list[str] = []
    for rel_name, full in _walk(base, patterns):
        info = full.lstat()
        mode = f"{stat.S_IMODE(info.st_mode):04o}"
        rel = show_name(rel_name)
        if stat.S_ISLNK(info.st_mode):
            target = os.readlink(full)
            lines.append(
                f"link      {rel} -> {show_name(normalise(target) if normalise else target)}"
            )
        elif stat.S_ISDIR(info.st_mode):
            lines.append(f"dir  {mode} {rel}")
        elif stat.S_ISREG(info.st_mode):
            lines.extend(_file_entry(rel, mode, full, normalise, max_text_bytes))
        else:
            lines.append(f"special   {rel} ({kind(info.st_mode)})")
    return "\n".join(lines) + ("\n" if lines else "")


def _walk(base: Path, patterns: tuple[str, ...]) -> Iterable[tuple[str, Path]]:
    entries: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(base):
        here = Path(dirpath)
        kept_dirs = []
        for name in dirnames:
            rel = (here / name).relative_to(base).as_posix()
            if _excluded(name, rel, patterns):
                continue
            entries.append((rel, here / name))
            if not (here / name).is_symlink():  # os.walk does not follow links; neither do we
                kept_dirs.append(name)
        dirnames[:] = kept_dirs
        for name in filenames:
            rel = (here / name).relative_to(base).as_posix()
            if not _excluded(name, rel, patterns):
                entries.append((rel, here / name))
    return sorted(entries)


def _excluded(name: str, rel: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(rel, p) for p in patterns)


def _file_entry(
    rel: str, mode: str, full: Path, normalise: TextNormaliser | None, max_text_bytes: int
) -> list[str]:
    """A regular file's lines; a file too large to show is hashed without holding it, and one
    swapped for a FIFO or a device meanwhile is never read."""
    try:
        fd = open_regular(full)
    except NotRegularFileError as exc:
        return [f"special   {rel} (changed while read: {exc})"]
    try:
        head = os.read(fd, max_text_bytes + 1)
        if len(head) <= max_text_bytes:
            return _file_lines(rel, mode, head, normalise, max_text_bytes)
        digest, size = hashlib.sha256(head), len(head)
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    shown = "[binary]" if b"\0" in head[:8192] else f"[over {max_text_bytes} bytes, not shown]"
    return [f"file {mode} {rel} ({size} bytes, sha256 {digest.hexdigest()}) {shown}"]


def _file_lines(
    rel: str, mode: str, data: bytes, normalise: TextNormaliser | None, max_text_bytes: int
) -> list[str]:
    text = _as_text(data) if len(data) <= max_text_bytes else None
    label = "sha256"
    if text is not None and normalise is not None:
        normalised = normalise(text)
        if normalised != text:
            text, data, label = normalised, normalised.encode("utf-8"), "normalised sha256"
    digest = hashlib.sha256(data).hexdigest()
    head = f"file {mode} {rel} ({len(data)} bytes, {label} {digest})"
    if text is None:
        if b"\0" in data[:8192] or len(data) <= max_text_bytes:
            return [f"{head} [binary]"]
        return [f"{head} [over {max_text_bytes} bytes, not shown]"]
    if not text:
        return [head]
    body = [f"  | {line}" for line in text.split("\n")]
    if text.endswith("\n"):
        body.pop()
    else:
        body.append("  \\ no newline at end of file")
    return [head, *body]


def _as_text(data: bytes) -> str | None:
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None
