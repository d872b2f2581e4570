"""Write an output file without ever replacing a device, a FIFO or a path behind a link.

Every file the project writes for a user (``--cleanroom-report``, attestations, ``ggen ... --out``,
``ggen.lock``, caches, state) goes through :func:`write_output` or :func:`open_output`:

- a new path or a regular file is written atomically: a temporary file in the same directory,
  then a rename, so readers see the old file or the new one, never half;
- a character device or a FIFO (``/dev/null``, ``/dev/stdout``'s target, a named pipe) is written
  *through*, never replaced; a FIFO nobody reads is refused instead of blocking;
- a directory, a block device or a socket is refused;
- a symbolic link is followed only when its target lies in the same directory; one that leads
  out of it is refused.

Refusals are :class:`~pytest_cleanroom.errors.OutputPathError` (an ``OSError``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat

from .errors import OutputPathError

TYPE_CHECKING = False  # typing is not imported at run time: ggen's cache-hit path loads it
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from contextlib import AbstractContextManager
    from typing import BinaryIO

_DEFAULT_MODE = 0o644
_SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX


def write_output(
    path: str | os.PathLike[str],
    data: bytes | str,
    *,
    mode: int | None = None,
    durable: bool = False,
) -> None:
    """Write ``data`` (``str`` as UTF-8) to ``path`` as described in the module docstring.

    ``mode`` is the new file's permission bits; ``None`` keeps a replaced file's bits (without
    setuid, setgid or sticky) and gives a new one ``0644``. ``durable`` fsyncs before the rename.
    """
    stage_output(path, data, mode=mode, durable=durable).commit()


def write_outputs(
    files: Iterable[tuple[str | os.PathLike[str], bytes | str]], *, mode: int | None = None
) -> None:
    """Write several files all or nothing: every one is staged (the disk space taken, each
    refusal found) before the first takes effect; a failure while staging leaves all as they
    were."""
    staged: list[StagedOutput] = []
    try:
        for path, data in files:
            staged.append(stage_output(path, data, mode=mode))
    except BaseException:
        for item in staged:
            item.discard()
        raise
    for index, item in enumerate(staged):
        try:
            item.commit()
        except BaseException:
            for rest in staged[index + 1 :]:
                rest.discard()
            raise


def check_output(path: str | os.PathLike[str]) -> None:
    """Prove ``path`` can be written (kind allowed, directory writable) without changing it.

    Raises :class:`OutputPathError` or another ``OSError`` saying why not.
    """
    target = _Target(path)
    with _directory(target) as dir_fd:
        name, info = _resolve(target, dir_fd)
        if info is not None and not stat.S_ISREG(info.st_mode):
            return
        fd, temp = _temporary(dir_fd, name, 0o600)
        os.close(fd)
        os.unlink(temp, dir_fd=dir_fd)


def open_output(
    path: str | os.PathLike[str], *, mode: int | None = None, durable: bool = False
) -> AbstractContextManager[BinaryIO]:
    """A binary file to write ``path``'s new content into (a download, a large report); it takes
    effect when the block ends without an exception, and an exception leaves ``path`` as it
    was (for a regular file or a new path)."""
    from contextlib import contextmanager  # not at import: ggen's cache-hit path loads this

    return contextmanager(_open_output)(_Target(path), mode, durable)


def _open_output(target: _Target, mode: int | None, durable: bool) -> Iterator[BinaryIO]:
    with _directory(target) as dir_fd:
        name, info = _resolve(target, dir_fd)
        if info is not None and not stat.S_ISREG(info.st_mode):
            with _write_through(target, name, dir_fd) as handle:
                yield handle
            return
        staged = _Staging(target, dir_fd, name, info, mode)
        try:
            with os.fdopen(staged.fd, "wb", closefd=False) as handle:
                yield handle
                handle.flush()
                if durable:
                    os.fsync(handle.fileno())
        except BaseException:
            staged.discard()
            raise
        staged.commit()


def stage_output(
    path: str | os.PathLike[str],
    data: bytes | str,
    *,
    mode: int | None = None,
    durable: bool = False,
) -> StagedOutput:
    """Write ``data`` beside ``path`` now; :meth:`StagedOutput.commit` puts it in place."""
    target = _Target(path)
    payload = data.encode() if isinstance(data, str) else data
    with _directory(target) as dir_fd:
        name, info = _resolve(target, dir_fd)
        if info is not None and not stat.S_ISREG(info.st_mode):
            return StagedOutput(target, payload, None)
        staged = _Staging(target, dir_fd, name, info, mode)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(staged.fd, view) :]
            if durable:
                os.fsync(staged.fd)
        except BaseException:
            staged.discard()
            raise
        staged.close()
        return StagedOutput(target, payload, staged)


class StagedOutput:
    """One output written beside its path, waiting for :meth:`commit` or :meth:`discard`."""

    def __init__(self, path: _Target, data: bytes, staging: _Staging | None) -> None:
        self.path = path
        self._data = data
        self._staging = staging

    def commit(self) -> None:
        """Put the new content in place (write it through, for a device or a FIFO)."""
        if self._staging is not None:
            self._staging.commit()
            return
        with _directory(self.path) as dir_fd:
            name, _ = _resolve(self.path, dir_fd)
            with _write_through(self.path, name, dir_fd) as handle:
                handle.write(self._data)

    def discard(self) -> None:
        """Remove the staged content; ``path`` stays as it was."""
        if self._staging is not None:
            self._staging.discard()


class _Staging:
    """The temporary file beside a regular file or a new path."""

    def __init__(
        self, target: _Target, dir_fd: int, name: str, info: os.stat_result | None, mode: int | None
    ) -> None:
        self.target = target
        self.name = name
        self.replace = info is not None
        directory = os.fstat(dir_fd)
        self.directory = (directory.st_dev, directory.st_ino)
        bits = _DEFAULT_MODE if info is None else stat.S_IMODE(info.st_mode) & ~_SPECIAL_BITS
        self.fd, self.temp = _temporary(dir_fd, name, bits if mode is None else mode)
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            os.close(self.fd)

    def commit(self) -> None:
        self.close()
        with _directory(self.target) as dir_fd:
            here = os.fstat(dir_fd)
            if (here.st_dev, here.st_ino) != self.directory:
                self._unlink(dir_fd)
                raise OutputPathError(self.target, "its directory was replaced while writing")
            try:
                _commit(dir_fd, self.temp, self.name, replace=self.replace)
            except BaseException:
                self._unlink(dir_fd)
                raise

    def discard(self) -> None:
        self.close()
        try:
            with _directory(self.target) as dir_fd:
                self._unlink(dir_fd)
        except OSError:
            pass

    def _unlink(self, dir_fd: int) -> None:
        import contextlib  # only when a write fails

        with contextlib.suppress(OSError):
            os.unlink(self.temp, dir_fd=dir_fd)


class _Target:
    """An output path split as :mod:`pathlib` splits it (``.`` segments, repeated and trailing
    slashes dropped), without importing it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        text = os.fspath(path)
        parts = [p for p in text.split("/") if p not in ("", ".")]
        lead = "/" if text.startswith("/") else ""
        self.name = parts[-1] if parts else ""
        self.parent = lead + "/".join(parts[:-1]) or "."
        self.text = lead + "/".join(parts) or "."

    def __str__(self) -> str:
        return self.text

    def __fspath__(self) -> str:
        return self.text


class _directory:  # noqa: N801 - used as a function: ``with _directory(target) as dir_fd``
    """A descriptor of ``target``'s directory, closed at the end of the block."""

    def __init__(self, target: _Target) -> None:
        self.fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def __enter__(self) -> int:
        return self.fd

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def _resolve(target: _Target, dir_fd: int) -> tuple[str, os.stat_result | None]:
    """The name to write in the directory and what is there now (``None``: nothing).

    A link whose target lies in the same directory stands for that target; any other link, a
    directory, a block device and a socket are refused."""
    name = target.name
    if name in ("", ".", ".."):
        raise OutputPathError(target, "is a directory, not a file name")
    info = _lstat(name, dir_fd)
    if info is not None and stat.S_ISLNK(info.st_mode):
        link = os.readlink(name, dir_fd=dir_fd)
        if "/" in link or link in (".", ".."):
            raise OutputPathError(
                target,
                f"is a symbolic link to {link}, out of its directory: refusing to write through "
                "it; give the real path or remove the link",
            )
        name = link
        info = _lstat(name, dir_fd)
        if info is not None and stat.S_ISLNK(info.st_mode):
            raise OutputPathError(target, "is a chain of symbolic links: give the real path")
    if info is None or stat.S_ISREG(info.st_mode):
        return name, info
    if stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode):
        return name, info
    kind = (
        "a directory"
        if stat.S_ISDIR(info.st_mode)
        else "a block device"
        if stat.S_ISBLK(info.st_mode)
        else "a socket"
        if stat.S_ISSOCK(info.st_mode)
        else "not a regular file"
    )
    raise OutputPathError(target, f"is {kind}: refusing to write it; give a file path")


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _temporary(dir_fd: int, name: str, bits: int) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        temp = f".{name[:200]}.{os.urandom(6).hex()}.tmp"
        try:
            fd = os.open(temp, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
        os.fchmod(fd, bits)
        return fd, temp
    raise OutputPathError(name, "no free temporary name in its directory")


def _commit(dir_fd: int, temp: str, name: str, *, replace: bool) -> None:
    """Put ``temp`` in place of ``name``: a new path is linked (so that something created there
    meanwhile is never replaced), a regular file renamed over."""
    if not replace:
        try:
            os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            raise OutputPathError(name, "appeared while it was being written; run again") from None
        except OSError as exc:  # a file system without hard links
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
        else:
            os.unlink(temp, dir_fd=dir_fd)
            return
    current = _lstat(name, dir_fd)
    if current is not None and not stat.S_ISREG(current.st_mode):
        raise OutputPathError(name, "was replaced by something else while it was being written")
    os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _write_through(target: _Target, name: str, dir_fd: int) -> BinaryIO:
    """``name`` (a character device or a FIFO) opened for writing, blocking."""
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OutputPathError(target, "is a FIFO that nobody reads: start its reader") from None
        raise
    info = os.fstat(fd)
    if not (stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        os.close(fd)
        raise OutputPathError(target, "was replaced by something else while it was opened")
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return os.fdopen(fd, "wb")
