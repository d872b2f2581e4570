"""Host path lookups that remember every directory they read, to tell later whether any changed.

What a path resolves to (whether it exists, is a directory, where its links lead) is decided by
the entries of the directories looked up on the way. :class:`Lookups` resolves paths as
``os.path.realpath`` does, noting the identity and change time of each such directory first;
:meth:`Lookups.witness` then answers "would every lookup give the same answer now?" with one
``stat`` per directory, instead of resolving every path again. A directory's change time moves
whenever an entry is added, removed or renamed over (and whatever else changes it); a mount on
it gives it another device and inode. Change times are only as fine as the filesystem's clock: a
directory whose change time is not clearly in the past when it is noted could change again
within the same tick unseen, so such a witness is never trusted (see :func:`settled`).
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass

from ...errors import SandboxError

#: ``(st_dev, st_ino, st_ctime_ns, st_mtime_ns)`` of a directory; ``None``: it is missing.
Stamp = tuple[int, int, int, int] | None

#: How many symlinks one resolution follows at most (the kernel's limit).
MAX_LINKS = 40


def stamp_of(path: str) -> Stamp:
    """The :data:`Stamp` of the directory (or anything) at ``path`` (links followed)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino, st.st_ctime_ns, st.st_mtime_ns)


def settled(stamp: Stamp, now_ns: int) -> bool:
    """Whether any later change of the directory must give it another change time: its own is
    older than ``now_ns`` (the coarse clock the kernel stamps files with, read before it) by
    more than its filesystem's granularity (2 s for those that keep whole seconds or two, such
    as FAT; 10 ms covers the finer ones)."""
    if stamp is None:
        return True
    changed = max(stamp[2], stamp[3])
    grain = 2_000_000_000 if changed % 1_000_000_000 == 0 else 10_000_000
    return changed + grain <= now_ns


def coarse_now_ns() -> int:
    """The clock the kernel stamps file changes with (its coarse real-time clock)."""
    clock = getattr(time, "CLOCK_REALTIME_COARSE", time.CLOCK_REALTIME)
    return time.clock_gettime_ns(clock)


@dataclass(frozen=True)
class Witness:
    """The directories some lookups read and their stamps then; ``settled``: all of them were
    clearly older than the lookups (else the witness proves nothing)."""

    stamps: tuple[tuple[str, Stamp], ...]
    settled: bool

    def holds(self) -> bool:
        """Whether every lookup noted would give the same answer now."""
        return self.settled and all(stamp_of(path) == was for path, was in self.stamps)


class Lookups:
    """Resolves host paths, noting each directory a name is looked up in (before the lookup)."""

    def __init__(self) -> None:
        self._now = coarse_now_ns()
        self._stamps: dict[str, Stamp] = {}

    def note(self, directory: str) -> None:
        """Note ``directory`` as read (its entries decide an answer)."""
        if directory not in self._stamps:
            self._stamps[directory] = stamp_of(directory)

    def witness(self) -> Witness:
        """What proves later that every lookup so far still gives the same answer."""
        stamps = tuple(self._stamps.items())
        return Witness(stamps, all(settled(stamp, self._now) for _, stamp in stamps))

    def resolve(self, path: str) -> tuple[str, int | None]:
        """``(os.path.realpath(path), st_mode of what it names)``; the mode is ``None`` when
        nothing is there. ``path`` must be absolute."""
        mode = self._resolve(path, [0])[1]  # notes what realpath reads (loops included)
        try:
            return os.path.realpath(path), mode
        except OSError as exc:  # a link on the way replaced meanwhile
            raise _changed(path, exc) from exc

    def lstat_mode(self, path: str) -> int | None:
        """The ``st_mode`` of ``path`` itself (a link is not followed); ``None``: missing."""
        parent, mode = self.resolve(os.path.dirname(path) or "/")
        if mode is None or not stat.S_ISDIR(mode):
            return None
        self.note(parent)
        try:
            return os.lstat(os.path.join(parent, os.path.basename(path))).st_mode
        except (OSError, ValueError):
            return None

    def exists(self, path: str) -> bool:
        return self.resolve(path)[1] is not None

    def _resolve(self, path: str, links: list[int]) -> tuple[str, int | None]:
        current = "/"
        mode: int | None = stat.S_IFDIR
        for name in path.split("/"):
            if name in ("", "."):
                continue
            if name == "..":  # the parent of a directory, else nothing (as for the kernel)
                current = os.path.dirname(current)
                mode = mode if mode is not None and stat.S_ISDIR(mode) else None
                continue
            if mode is None or not stat.S_ISDIR(mode):  # below something missing: as realpath
                current, mode = os.path.join(current, name), None
                continue
            self.note(current)
            candidate = os.path.join(current, name)
            try:
                mode = os.lstat(candidate).st_mode
            except (OSError, ValueError):
                current, mode = candidate, None
                continue
            if not stat.S_ISLNK(mode):
                current = candidate
                continue
            links[0] += 1
            if links[0] > MAX_LINKS:  # a loop: realpath leaves it as it is
                current, mode = candidate, None
                continue
            current, mode = self._resolve(os.path.join(current, _readlink(candidate)), links)
        return current, mode


def _readlink(path: str) -> str:
    """The target of the link ``path``; :class:`SandboxError` if it is one no longer."""
    try:
        return os.readlink(path)
    except OSError as exc:
        raise _changed(path, exc) from exc


def _changed(path: str, exc: OSError) -> SandboxError:
    return SandboxError(
        f"{path} changed while the sandbox's filesystem was planned (a link on the way was "
        f"replaced: {exc.strerror}); nothing ran: run the command again"
    )
