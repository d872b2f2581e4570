"""Putting a cache entry's outputs back into the project: inside it only, and all or nothing.

Each output's directory is reached from the project root one component at a time with
``O_NOFOLLOW``, so no symbolic link (planted in the project, or named by a tampered entry) leads a
write elsewhere. Every file is first copied beside its target, checked against its sha256 while
it is copied, with permission bits no wider than ``0o777``. A journal in ``.ggen/journal`` then
marks the point of no return and the copies are renamed into place. A run killed before that
point leaves the project as it was; :func:`recover` (run by the next run) removes its copies, or
finishes the renames of a run killed after it.

:mod:`pytest_cleanroom.safe_write` is not used here: it opens an output's parent directory by
path, following links, which is right for a path a user gives and wrong for one an entry names.
"""

from __future__ import annotations

import os
import stat

from pytest_cleanroom.faults import crash_point
from pytest_cleanroom.globparts import segments

from . import _jsonc
from ._digest import for_size
from .files import CHUNK, named
from .state import atomic_write

TYPE_CHECKING = False  # typing itself is not imported: the cache-hit fast path loads this module
if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence
    from pathlib import Path

TEMP_MARK = ".ggen-restore-"
#: A restore's temporary copy (compiled by re on first use, which a plain restore never needs).
_TEMP = r"\.(?P<name>.{1,100})\.ggen-restore-[0-9a-f]{16}\Z"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class RestoreRefused(Exception):  # noqa: N818 - a refusal, reported as a warning
    """An output cannot be restored safely; the project was left as it was."""


class Source:
    """One stored output: where its bytes are, their sha256 and the file's permission bits."""

    __slots__ = ("mode", "path", "sha256")

    def __init__(self, path: Path | str, sha256: str, mode: int) -> None:
        self.path = path
        self.sha256 = sha256
        self.mode = mode


class _Planned:
    __slots__ = ("directory", "name", "source", "temp")

    def __init__(self, directory: tuple[str, ...], name: str, temp: str, source: Source) -> None:
        self.directory = directory  # relative to the project root
        self.name = name
        self.temp = temp
        self.source = source


def restore(
    root: Path | str, base: Sequence[str], outputs: Mapping[str, Source], journal_dir: Path | str
) -> list[str]:
    """Write ``outputs`` (paths relative to ``root/base``) into the project at ``root``.

    Raises :class:`RestoreRefused` (a link or a directory in the way, a copy that does not match
    its sha256) or ``OSError`` (a full disk); either way nothing has changed.
    """
    planned, missing = _plan(root, tuple(base), outputs)
    journal = os.path.join(journal_dir, f"restore-{os.urandom(8).hex()}.json")
    record = {
        "state": "staging",
        "dirs": ["/".join(d) for d in missing],
        "files": [["/".join(p.directory), p.temp, p.name] for p in planned],
    }
    atomic_write(journal, _jsonc.dumps(record))
    crash_point("restore: journal written", "GGEN_LIFECYCLE")
    with _Directories(root) as dirs:
        try:
            for directory in missing:
                os.mkdir(directory[-1], 0o755, dir_fd=dirs.open(directory[:-1]))
            for item in planned:
                _copy(item, dirs.open(item.directory))
                crash_point(f"restore: staged {item.name}", "GGEN_LIFECYCLE")
        except BaseException:
            _undo(dirs, record)
            _unlink(journal)
            raise
        record["state"] = "commit"
        atomic_write(journal, _jsonc.dumps(record))  # from here on the restore is finished
        crash_point("restore: committed", "GGEN_LIFECYCLE")
        for item in planned:
            fd = dirs.open(item.directory)
            os.rename(item.temp, item.name, src_dir_fd=fd, dst_dir_fd=fd)
            crash_point(f"restore: renamed {item.name}", "GGEN_LIFECYCLE")
    _unlink(journal)
    return sorted(outputs)


def _unlink(path: str) -> None:
    try:  # noqa: SIM105 - contextlib is not loaded on the cache-hit path
        os.unlink(path)
    except FileNotFoundError:
        pass


def recover(root: Path, journal_dir: Path) -> list[str]:
    """Finish or undo the restores a killed run left in ``journal_dir``; returns what was done."""
    import contextlib
    import json

    done: list[str] = []
    if not journal_dir.is_dir():
        return done
    for journal in named(journal_dir, "restore-", ".json"):
        try:
            record = json.loads(journal.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            record = None
        if _well_formed(record):
            with _Directories(root) as dirs:
                if record["state"] == "commit":
                    _redo(dirs, record)
                    done.append(f"finished the restore recorded in {journal.name}")
                else:
                    _undo(dirs, record)
                    done.append(f"undid the restore recorded in {journal.name}")
        journal.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            journal_dir.rmdir()
    for temp in named(journal_dir, ".restore-", ".tmp"):  # a journal write cut short
        if ".json." not in temp.name:
            continue
        temp.unlink(missing_ok=True)
    return done


# -- planning --------------------------------------------------------------------------------------


def _plan(
    root: Path | str, base: tuple[str, ...], outputs: Mapping[str, Source]
) -> tuple[list[_Planned], list[tuple[str, ...]]]:
    planned: list[_Planned] = []
    missing: list[tuple[str, ...]] = []
    known: dict[tuple[str, ...], bool] = {}  # directory -> exists
    for rel in sorted(outputs):
        parts = segments(rel)
        if not parts or "/".join(parts) != rel:
            raise RestoreRefused(f"output path {rel!r} is not a plain relative path")
        full = base + tuple(parts)
        for depth in range(1, len(full)):
            directory = full[:depth]
            if directory not in known:
                known[directory] = _existing_directory(root, directory)
                if not known[directory]:
                    missing.append(directory)
        target = _lstat(os.path.join(root, *full))
        if target is not None and stat.S_ISDIR(target.st_mode):
            raise RestoreRefused(f"{'/'.join(full)} is a directory in the project")
        temp = f".{full[-1][:100]}{TEMP_MARK}{os.urandom(8).hex()}"
        planned.append(_Planned(full[:-1], full[-1], temp, outputs[rel]))
    return planned, missing


def _existing_directory(root: Path | str, directory: tuple[str, ...]) -> bool:
    info = _lstat(os.path.join(root, *directory))
    if info is None:
        return False
    if stat.S_ISLNK(info.st_mode):
        raise RestoreRefused(
            f"{'/'.join(directory)} is a symbolic link: outputs are not restored through links"
        )
    if not stat.S_ISDIR(info.st_mode):
        raise RestoreRefused(f"{'/'.join(directory)} is not a directory")
    return True


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


# -- doing and undoing -------------------------------------------------------------------------


class _Directories:
    """Descriptors of directories below ``root``, each reached without following a link."""

    def __init__(self, root: Path | str) -> None:
        self.root = root
        self._fds: dict[tuple[str, ...], int] = {}

    def __enter__(self) -> _Directories:
        self._fds[()] = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def open(self, directory: Sequence[str]) -> int:
        key = tuple(directory)
        if key not in self._fds:
            parent = self.open(key[:-1])
            try:
                self._fds[key] = os.open(key[-1], _DIR_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                raise
            except OSError:  # ELOOP (a link) or ENOTDIR
                raise RestoreRefused(f"{'/'.join(key)} is not a plain directory") from None
        return self._fds[key]

    def entries(self, record: Mapping[str, object]) -> Iterator[tuple[int, str, str]]:
        """(directory fd, temporary name, final name) of a journal's files that can be reached."""
        files = record["files"]
        assert isinstance(files, list)
        for directory, temp, name in files:
            try:
                fd = self.open(tuple(directory.split("/")) if directory else ())
            except (OSError, RestoreRefused):
                continue
            yield fd, temp, name


def _copy(item: _Planned, dir_fd: int) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    source = os.open(item.source.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(source)
        if not stat.S_ISREG(info.st_mode):
            raise RestoreRefused(f"the stored copy of {item.name!r} is not a regular file")
        digest = for_size(info.st_size)
        target = os.open(item.temp, flags, 0o600, dir_fd=dir_fd)
        try:
            while block := os.read(source, CHUNK):
                digest.update(block)
                view = memoryview(block)
                while view:
                    view = view[os.write(target, view) :]
            os.fchmod(target, item.source.mode & 0o777)
        finally:
            os.close(target)
    finally:
        os.close(source)
    if digest.hexdigest() != item.source.sha256:
        raise RestoreRefused(f"the stored copy of {item.name!r} does not match its sha256")


def _undo(dirs: _Directories, record: Mapping[str, object]) -> None:
    import contextlib  # a restore is undone only when it failed or its run was killed

    for dir_fd, temp, _ in dirs.entries(record):
        with contextlib.suppress(OSError):
            os.unlink(temp, dir_fd=dir_fd)
    created = record["dirs"]
    assert isinstance(created, list)
    for directory in reversed(created):
        with contextlib.suppress(OSError, RestoreRefused):
            parts = tuple(directory.split("/"))
            os.rmdir(parts[-1], dir_fd=dirs.open(parts[:-1]))  # only if still empty


def _redo(dirs: _Directories, record: Mapping[str, object]) -> None:
    import contextlib  # only for a run killed while renaming

    for dir_fd, temp, name in dirs.entries(record):
        with contextlib.suppress(FileNotFoundError):
            os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _well_formed(record: object) -> bool:
    """A journal this module wrote: its names are plain, and each copy is named after its target
    (so that a forged journal cannot rename anything but restore copies)."""
    if not isinstance(record, dict) or record.get("state") not in ("staging", "commit"):
        return False
    dirs, files = record.get("dirs"), record.get("files")
    if not isinstance(dirs, list) or not isinstance(files, list):
        return False
    if not all(isinstance(d, str) and segments(d) == d.split("/") for d in dirs):
        return False
    for item in files:
        if not isinstance(item, list) or len(item) != 3:
            return False
        if not all(isinstance(x, str) for x in item):
            return False
        directory, temp, name = item
        if directory and segments(directory) != directory.split("/"):
            return False
        import re  # a journal is read only after a killed run

        match = re.match(_TEMP, temp, re.DOTALL)
        if match is None or "/" in name or name in (".", "..") or match["name"] != name[:100]:
            return False
    return True
