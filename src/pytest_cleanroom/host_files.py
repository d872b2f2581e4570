"""How host-side helpers read a workspace that sandboxed commands wrote: a file is read only if it
is a regular file when opened (never a FIFO or a device that blocks, never through a link), and a
file name is shown in one unambiguous line whatever bytes it holds."""

from __future__ import annotations

import errno
import os
import stat

from .errors import WorkspaceError

_CHUNK = 1 << 20
#: Characters that make a shown name ambiguous unless it is quoted.
_QUOTE_TRIGGERS = ("\\", " -> ")


class NotRegularFileError(WorkspaceError, OSError):
    """A path expected to be a regular file is a link, FIFO, device, socket or directory."""


def open_regular(path: str | os.PathLike[str]) -> int:
    """A read-only descriptor of ``path`` if it is a regular file (not followed if a link).

    Opened non-blocking so that a FIFO put in its place never blocks; the caller closes it.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the last component is a symbolic link
            raise NotRegularFileError(f"{os.fspath(path)!r} is a symbolic link") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFileError(f"{os.fspath(path)!r} is not a regular file ({kind(mode)})")
    return fd


def read_regular(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (see :func:`open_regular`); with ``max_bytes``, a
    larger file is an ``OSError`` (``EFBIG``) instead of being read whole."""
    fd = open_regular(path)
    try:
        parts = []
        size = 0
        while chunk := os.read(fd, _CHUNK):
            size += len(chunk)
            if max_bytes is not None and size > max_bytes:
                raise OSError(errno.EFBIG, f"larger than {max_bytes} bytes", os.fspath(path))
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def kind(mode: int) -> str:
    """What a ``st_mode`` is, in words (``"fifo"``, ``"socket"``, ``"directory"``, ...)."""
    for test, name in (
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ):
        if test(mode):
            return name
    return "unknown"


def show_name(name: str) -> str:
    """``name`` as it can be written on one line of a report without being mistaken for another.

    A plain printable name is shown as is. Anything else (a newline or other control character,
    bytes that are not UTF-8, a backslash, a leading quote or space, ``" -> "``) is shown quoted,
    with ``\\n``, ``\\t``, ``\\\\``, ``\\"``, ``\\xNN`` for a byte that is not UTF-8 and
    ``\\uNNNN`` for other unprintable characters, so two names never show the same.
    """
    plain = (
        name.isprintable()
        and not name.startswith(('"', " "))
        and not name.endswith(" ")
        and not any(trigger in name for trigger in _QUOTE_TRIGGERS)
    )
    return name if plain else '"' + "".join(_escape(ch) for ch in name) + '"'


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch in '\\"':
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for a byte that is not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    if ch.isprintable() or ch == " ":
        return ch
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
