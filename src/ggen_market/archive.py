"""Reproducible gpack archives and an extractor that trusts nothing in them.

``pack_directory`` gives the same bytes for the same directory: entries sorted, owners 0,
modes fixed (0644, or 0755 when any execute bit is set), mtime 0, gzip header without name or
time. ``extract_archive`` refuses entries that leave the destination (``..``, absolute paths,
links pointing outside), device files and FIFOs, and archives that expand past a size limit.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO

from .errors import ArchiveError

MiB = 1024 * 1024
EXCLUDED_NAMES = frozenset({".git", ".hg", ".svn", "__pycache__", ".DS_Store", ".ggen"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class ExtractLimits:
    """Refuse archives past these sizes (a compressed archive can expand enormously)."""

    max_total_bytes: int = 256 * MiB
    max_file_bytes: int = 64 * MiB
    max_entries: int = 20_000
    #: Decompressed bytes allowed beyond the files' contents (tar headers, padding, pax records).
    header_allowance: int = 16 * MiB


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _walk(root: Path) -> Iterator[Path]:
    """Every path under ``root`` in a stable order, skipping VCS and cache files."""
    real_root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_NAMES)
        base = Path(dirpath)
        for name in dirnames:
            yield base / name
        for name in sorted(filenames):
            if name in EXCLUDED_NAMES or name.endswith(EXCLUDED_SUFFIXES):
                continue
            path = base / name
            if path.is_symlink() and not path.resolve().is_relative_to(real_root):
                raise ArchiveError(
                    f"{path}: symlink points outside the gpack ({os.readlink(path)}); refusing to"
                    " pack it"
                )
            yield path


def pack_directory(root: Path) -> bytes:
    """A reproducible ``.tar.gz`` of the gpack at ``root`` (links inside it are stored as files)."""
    if not root.is_dir():
        raise ArchiveError(f"{root}: not a directory")
    members = sorted(_walk(root), key=lambda p: p.relative_to(root).as_posix())
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in members:
            name = path.relative_to(root).as_posix()
            info = tarfile.TarInfo(name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            st = path.stat()
            if stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.mode = 0o755 if st.st_mode & 0o111 else 0o644
                info.size = st.st_size
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                raise ArchiveError(f"{path}: not a regular file or directory; refusing to pack it")
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return compressed.getvalue()


class _LimitedReader(io.RawIOBase):
    """Decompressed stream that fails once more than ``limit`` bytes were read from it."""

    def __init__(self, inner: IO[bytes], limit: int, label: str) -> None:
        self._inner = inner
        self._limit = limit
        self._read = 0
        self._label = label

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        self._read += len(data)
        if self._read > self._limit:
            raise ArchiveError(
                f"{self._label}: expands past the size limit of {self._limit} bytes; refusing it"
                " (a compressed archive that grows this much is treated as a bomb)"
            )
        buffer[: len(data)] = data
        return len(data)


def _safe_name(name: str, label: str) -> str:
    """The normalised relative path of an entry, or :class:`ArchiveError` when it escapes."""
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\\" in name:
        raise ArchiveError(f"{label}: entry {name!r} has an absolute path; refusing the archive")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(
            f"{label}: entry {name!r} leaves the package ('..'); refusing the archive"
        )
    if not parts:
        return "."
    return "/".join(parts)


def _link_target_inside(name: str, target: str) -> bool:
    if not target or target.startswith("/"):
        return False
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    return joined != ".." and not joined.startswith("../")


def extract_archive(
    source: Path | bytes, dest: Path, *, limits: ExtractLimits = ExtractLimits(), label: str = ""
) -> None:
    """Extract a ``.tar.gz`` into ``dest`` (created, must not exist), refusing anything unsafe.

    On error ``dest`` may hold a partial tree: callers extract into a staging directory they
    discard on failure.
    """
    label = label or (str(source) if isinstance(source, Path) else "archive")
    raw: BinaryIO = source.open("rb") if isinstance(source, Path) else io.BytesIO(source)
    dest.mkdir(parents=True, exist_ok=False)
    real_dest = dest.resolve()
    links: list[tuple[str, str]] = []
    written: set[str] = set()
    total = 0
    try:
        gz = gzip.GzipFile(fileobj=raw, mode="rb")
        limited = io.BufferedReader(
            _LimitedReader(
                gz,  # type: ignore[arg-type]
                limits.max_total_bytes + limits.header_allowance,
                label,
            )
        )
        with tarfile.open(fileobj=limited, mode="r|") as tar:
            for count, member in enumerate(tar, start=1):
                if count > limits.max_entries:
                    raise ArchiveError(f"{label}: more than {limits.max_entries} entries; refusing")
                name = _safe_name(member.name, label)
                if name in written:
                    raise ArchiveError(
                        f"{label}: entry {name!r} appears twice; refusing the archive"
                    )
                target = dest / name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isreg():
                    if member.size > limits.max_file_bytes:
                        raise ArchiveError(
                            f"{label}: entry {name!r} is {member.size} bytes, past the per-file"
                            f" limit of {limits.max_file_bytes}; refusing the archive"
                        )
                    total += member.size
                    if total > limits.max_total_bytes:
                        raise ArchiveError(
                            f"{label}: expands past the size limit of {limits.max_total_bytes}"
                            " bytes; refusing the archive"
                        )
                    handle = tar.extractfile(member)
                    assert handle is not None
                    _write_file(target, handle, 0o755 if member.mode & 0o111 else 0o644)
                elif member.issym() or member.islnk():
                    kind = "symlink" if member.issym() else "hardlink"
                    link = member.linkname
                    inside = (
                        _link_target_inside(name, link)
                        if member.issym()
                        else _safe_target(link) is not None
                    )
                    if not inside:
                        raise ArchiveError(
                            f"{label}: {kind} {name!r} -> {link!r} points outside the package;"
                            " refusing the archive"
                        )
                    if member.islnk():
                        source_name = _safe_target(link)
                        if source_name not in written:
                            raise ArchiveError(
                                f"{label}: hardlink {name!r} -> {link!r} names no earlier file;"
                                " refusing the archive"
                            )
                        # A copy, not a link: installed files never share an inode.
                        with (dest / str(source_name)).open("rb") as src:
                            _write_file(target, src, 0o644)
                    else:
                        links.append((name, link))
                else:
                    kind = "device file" if (member.ischr() or member.isblk()) else "special file"
                    if member.isfifo():
                        kind = "FIFO"
                    raise ArchiveError(
                        f"{label}: entry {name!r} is a {kind}; gpacks hold only files, directories"
                        " and links inside themselves"
                    )
                written.add(name)
        # Symlinks last, so no file above was ever written through one; then check each
        # physically, which also catches chains of links that are only lexically inside.
        for name, link in links:
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(link, target)
        for name, link in links:
            if not (dest / name).resolve().is_relative_to(real_dest):
                raise ArchiveError(
                    f"{label}: symlink {name!r} -> {link!r} resolves outside the package;"
                    " refusing the archive"
                )
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError, ValueError) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError(
            f"{label}: cannot extract: not a valid .tar.gz or unwritable ({exc})"
        ) from None
    finally:
        raw.close()


def _safe_target(link: str) -> str | None:
    """Normalised relative hardlink target, or ``None`` when it would leave the package."""
    if not link or link.startswith("/"):
        return None
    parts = [p for p in link.split("/") if p not in ("", ".")]
    if ".." in parts or not parts:
        return None
    return "/".join(parts)


def _write_file(target: Path, handle: IO[bytes], mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(target, flags, mode)
    with os.fdopen(fd, "wb") as out:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            out.write(chunk)
    os.chmod(target, mode)


def tree_digest(root: Path) -> str:
    """sha256 over every file and link under ``root``: relative path, execute bit and content.

    The same tree gives the same digest on any machine; ``ggen market verify`` compares it.
    """
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        entries = sorted(filenames + [d for d in dirnames if (base / d).is_symlink()])
        for name in entries:
            path = base / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                digest.update(f"L {rel} {os.readlink(path)}\n".encode())
            else:
                executable = "x" if path.stat().st_mode & 0o111 else "-"
                digest.update(f"F {rel} {executable} {sha256_file(path)}\n".encode())
    return digest.hexdigest()
