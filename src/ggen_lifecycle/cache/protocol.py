"""The task cache's contract: what the runner and the dry-run planner ask of any cache."""

from __future__ import annotations

import abc

TYPE_CHECKING = False  # neither typing nor dataclasses: the cache-hit fast path loads this module
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path
    from typing import Any


class CorruptEntryError(Exception):
    """Raised inside the cache when an entry does not match its ``meta.json``."""


class Entry:
    """A verified cache entry, on this file system, ready to restore.

    ``origin`` is what the run reports for it: ``"hit"`` (the local cache) or ``"remote hit"``.
    """

    __slots__ = ("key", "meta", "origin", "path")

    def __init__(
        self, key: str, path: Path | str, meta: dict[str, Any], origin: str = "hit"
    ) -> None:
        self.key = key
        self.path = path
        self.meta = meta
        self.origin = origin

    def __repr__(self) -> str:
        return f"Entry(key={self.key!r}, path={self.path!r}, origin={self.origin!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        mine = (self.key, self.path, self.meta, self.origin)
        return mine == (other.key, other.path, other.meta, other.origin)

    __hash__ = None  # type: ignore[assignment]  # as a frozen dataclass with a dict field

    def replace(self, origin: str) -> Entry:
        """The same entry reported with another ``origin``."""
        return Entry(self.key, self.path, self.meta, origin)

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        outputs: dict[str, dict[str, Any]] = self.meta["outputs"]
        return outputs

    @property
    def log_path(self) -> Path:
        from pathlib import Path

        return Path(self.path, "log")


class TaskCache(abc.ABC):
    """Where task outputs and logs are kept between runs, by task key.

    The runner gets one (``Runner(..., cache=...)``; by default :func:`ggen_lifecycle.cache.
    open_cache` builds it from ``[cache]``): :class:`~ggen_lifecycle.cache.local.LocalCache` in
    ``.ggen/cache``, or :class:`~ggen_lifecycle.remote_cache.RemoteCache`, which puts a Turborepo
    Remote Cache API server behind a local cache.
    """

    @abc.abstractmethod
    def lookup(self, key: str) -> Entry | None:
        """The verified entry for ``key``; ``None`` on a miss (a corrupted entry is reported,
        removed and a miss)."""

    @abc.abstractmethod
    def would_hit(self, key: str) -> bool:
        """Whether an entry for ``key`` is held now, without verifying it or using the network
        (the ``--dry-run`` plan's ``hit``/``miss``)."""

    @abc.abstractmethod
    def restore(self, entry: Entry, cwd: Path, *, root: Path, declared: Sequence[str]) -> list[str]:
        """Put ``entry``'s outputs in place under ``cwd``, inside ``root`` only, all or nothing.

        :class:`CorruptEntryError` when the entry holds what ``declared`` (the phase's
        ``outputs`` globs) does not cover; ``RestoreRefused`` or :class:`OSError` when the
        project is in the way. Either way the project is left as it was.
        """

    @abc.abstractmethod
    def store(
        self,
        key: str,
        cwd: Path,
        outputs: Sequence[str],
        log: Path,
        info: Mapping[str, Any],
        *,
        duration: float = 0.0,
    ) -> None:
        """Keep ``outputs`` (relative to ``cwd``) and ``log`` under ``key``; ``duration`` is how
        long the task took to build them. :class:`OSError` when they cannot be kept."""

    @abc.abstractmethod
    def discard(self, key: str) -> None:
        """Forget the entry for ``key``, if there is one."""
