"""The local task cache in ``.ggen/cache``: content-addressed entries of outputs and logs.

An entry is a directory named by the task's key, holding ``meta.json`` (what it holds, with a
sha256 of every file), ``log`` and ``out/``. Entries are built in a temporary directory and
renamed into place, so that a reader sees a whole entry or none. An entry whose files do not match
its ``meta.json`` is reported, removed and treated as a miss.
"""

from __future__ import annotations

import os
import stat
import time

from pytest_cleanroom.faults import crash_point
from pytest_cleanroom.globparts import plain_matches, segments

from .. import _jsonc, _restore
from .._digest import for_size
from .._restore import RestoreRefused, Source
from ..files import CHUNK, remove_tree, sha256_file
from .protocol import CorruptEntryError, Entry, TaskCache

TYPE_CHECKING = False  # typing itself is not imported: the cache-hit fast path loads this module
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from pathlib import Path
    from typing import Any

FORMAT = 1
MAX_META_BYTES = 16 * 1024 * 1024
_HEX = frozenset("0123456789abcdef")


def _join(base: Path | str, *names: str) -> Path | str:
    """``base`` joined with ``names``, of ``base``'s type (the cache-hit path gives strings and
    loads no :mod:`pathlib`)."""
    return os.path.join(base, *names) if isinstance(base, str) else base.joinpath(*names)


def _is_sha256(text: str) -> bool:
    """Whether ``text`` is a sha256 as this cache writes it: 64 lowercase hex digits."""
    return len(text) == 64 and _HEX.issuperset(text)


def _read_meta(path: Path | str) -> Any:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_META_BYTES + 1)
        if len(data) > MAX_META_BYTES:
            raise CorruptEntryError("meta.json is larger than 16 MiB")
        return _jsonc.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorruptEntryError(f"meta.json unreadable: {exc}") from None


def _check_record(rel: str, info: Any, *, output: bool) -> None:
    """A record's path is plain and relative, its size, sha256 and mode of the right kinds; a
    mode beyond ``0o777`` (setuid, setgid, sticky) is never one this cache wrote."""
    if not isinstance(info, dict) or (output and segments(rel) != rel.split("/")):
        raise CorruptEntryError(f"bad record for {rel!r}")
    size, digest, mode = info.get("size"), info.get("sha256"), info.get("mode", 0o644)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CorruptEntryError(f"bad size for {rel!r}")
    if not isinstance(digest, str) or not _is_sha256(digest):
        raise CorruptEntryError(f"bad sha256 for {rel!r}")
    if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o777:
        raise CorruptEntryError(f"bad mode for {rel!r} (only permission bits are restored)")


def _check_stored(entry: Path | str, stored: str, info: dict[str, Any]) -> None:
    """The stored file is a regular file inside the entry (no link on the way) matching ``info``."""
    target = os.path.join(entry, stored)
    try:
        inside = os.path.realpath(target) == os.path.join(os.path.realpath(entry), stored)
        if not inside or not stat.S_ISREG(os.lstat(target).st_mode):
            raise CorruptEntryError(f"{stored} is not a regular file inside the entry")
        if os.stat(target).st_size != info["size"]:
            raise CorruptEntryError(f"{stored} has the wrong size")
        if sha256_file(target) != info["sha256"]:
            raise CorruptEntryError(f"{stored} does not match its sha256")
    except OSError as exc:
        raise CorruptEntryError(f"{stored} unreadable: {exc}") from None


def declares(patterns: Sequence[str], rel: str) -> bool:
    """Whether the ``outputs`` globs ``patterns`` (``!`` excludes) cover the path ``rel``."""
    positive = [p for p in patterns if not p.startswith("!")]
    negative = [p[1:] for p in patterns if p.startswith("!")]
    return any(_matches(rel, p) for p in positive) and not any(_matches(rel, p) for p in negative)


def _matches(rel: str, pattern: str) -> bool:
    """:func:`pytest_cleanroom.globwalk.matches` (loaded only for a pattern other than
    ``DIR/**``)."""
    plain = plain_matches(rel, pattern)
    if plain is not None:
        return plain
    from pytest_cleanroom import globwalk

    return globwalk.matches(rel, pattern)


def _copy_hashing(source: Path, target: Path) -> tuple[str, int]:
    h = for_size(source.stat().st_size)
    size = 0
    with source.open("rb") as src, target.open("wb") as dst:
        while block := src.read(CHUNK):
            h.update(block)
            dst.write(block)
            size += len(block)
    return h.hexdigest(), size


class LocalCache(TaskCache):
    """Entries under ``directory``, kept under ``max_bytes`` by evicting the least recently used."""

    def __init__(
        self, directory: Path | str, max_bytes: int, warn: Callable[[str], None] | None = None
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.warn = warn or (lambda message: None)

    def _entry_dir(self, key: str) -> Path | str:
        return _join(self.directory, key)

    def _path(self) -> Path:
        """The cache's directory as a :class:`~pathlib.Path` (for the work a hit never does)."""
        from pathlib import Path

        return Path(self.directory)

    # -- reading ---------------------------------------------------------------------------------

    def lookup(self, key: str) -> Entry | None:
        """The verified entry for ``key``; ``None`` on a miss or a corrupted entry (reported)."""
        path = self._entry_dir(key)
        if not os.path.isdir(path):
            return None
        try:
            meta = self._verify(key, path)
        except CorruptEntryError as exc:
            self.warn(f"cache entry {key[:12]} is corrupted ({exc}); ignoring and removing it")
            self._remove(path)
            return None
        entry = Entry(key=key, path=path, meta=meta)
        self.touch(entry)
        return entry

    def peek(self, key: str) -> Entry | None:
        """The verified entry for ``key``, or ``None``, changing nothing (a corrupted entry is
        neither reported nor removed: :meth:`lookup` does that)."""
        path = self._entry_dir(key)
        try:
            return Entry(key=key, path=path, meta=self._verify(key, path))
        except CorruptEntryError:
            return None

    def touch(self, entry: Entry) -> None:
        """Mark ``entry`` as just used (eviction removes the least recently used first)."""
        try:  # noqa: SIM105 - contextlib is not loaded on the cache-hit path
            os.utime(os.path.join(entry.path, "meta.json"))
        except OSError:
            pass

    def would_hit(self, key: str) -> bool:
        return os.path.isfile(os.path.join(self._entry_dir(key), "meta.json"))

    def _verify(self, key: str, path: Path | str) -> dict[str, Any]:
        meta = _read_meta(os.path.join(path, "meta.json"))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("key") != key:
            raise CorruptEntryError("meta.json has the wrong format or key")
        outputs = meta.get("outputs")
        log = meta.get("log")
        if not isinstance(outputs, dict) or not isinstance(log, dict):
            raise CorruptEntryError("meta.json lacks outputs or log")
        files = [(f"out/{rel}", rel, info) for rel, info in outputs.items()]
        for stored, rel, info in [*files, ("log", "log", log)]:
            _check_record(rel, info, output=stored != "log")
            _check_stored(path, stored, info)
        return meta

    def restore(
        self,
        entry: Entry,
        cwd: Path | str,
        *,
        root: Path | str | None = None,
        declared: Sequence[str] | None = None,
    ) -> list[str]:
        """Copy the entry's outputs back under ``cwd``, inside ``root`` (default ``cwd``) only,
        all or nothing (see :mod:`._restore`).

        With ``declared`` (the phase's ``outputs`` globs), an entry holding anything else is
        :class:`CorruptEntryError`. :class:`RestoreRefused` when a link or a directory is in the
        way; either way the project is left as it was.
        """
        root = cwd if root is None else root
        if declared is not None:
            for rel in entry.outputs:
                if not declares(declared, rel):
                    raise CorruptEntryError(f"it holds {rel!r}, which the phase does not declare")
        base = _relative_parts(os.fspath(cwd), os.fspath(root))
        if base is None:
            raise RestoreRefused(f"{cwd} is outside the project {root}")
        sources = {
            rel: Source(os.path.join(entry.path, "out", rel), info["sha256"], info["mode"])
            for rel, info in entry.outputs.items()
        }
        journal = os.path.join(os.path.dirname(os.fspath(self.directory).rstrip("/")), "journal")
        return _restore.restore(root, base, sources, journal)

    # -- writing ---------------------------------------------------------------------------------

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
        """Record ``outputs`` (relative to ``cwd``) and ``log`` under ``key``, with the
        ``duration`` of the task that built them (seconds), then evict."""
        directory = self._path()
        directory.mkdir(parents=True, exist_ok=True)
        temp = directory / f".tmp-{os.urandom(16).hex()}"
        try:
            (temp / "out").mkdir(parents=True)
            recorded: dict[str, dict[str, Any]] = {}
            for rel in outputs:
                source = cwd / rel
                target = temp / "out" / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                digest, size = _copy_hashing(source, target)
                crash_point(f"store: copied {rel}", "GGEN_LIFECYCLE")
                mode = source.stat().st_mode & 0o777
                recorded[rel] = {"sha256": digest, "size": size, "mode": mode}
            log_digest, log_size = _copy_hashing(log, temp / "log")
            meta = {
                "format": FORMAT,
                "key": key,
                "created": time.time(),
                "duration": round(duration, 6),
                "outputs": recorded,
                "log": {"sha256": log_digest, "size": log_size},
                **info,
            }
            import json  # written with indent (which json's C encoder does not do): a miss

            (temp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            crash_point("store: meta written", "GGEN_LIFECYCLE")
            final = directory / key
            if final.exists():
                self._remove(final)
            os.rename(temp, final)
            crash_point("store: entry in place", "GGEN_LIFECYCLE")
        finally:
            if temp.exists():
                remove_tree(temp)
        self.evict()

    def discard(self, key: str) -> None:
        """Remove the entry for ``key``, if there is one."""
        self._remove(self._entry_dir(key))

    def _remove(self, path: Path | str) -> None:
        # Rename first so that a concurrent reader never sees a half-deleted entry.
        doomed = os.path.join(os.path.dirname(path), f".del-{os.urandom(16).hex()}")
        try:
            os.rename(path, doomed)
        except OSError:
            return
        remove_tree(doomed)

    def entries(self) -> list[tuple[Path, int, float]]:
        """(entry directory, bytes, last use) of every entry."""
        import contextlib  # eviction: never on the cache-hit path

        out: list[tuple[Path, int, float]] = []
        directory = self._path()
        if not directory.is_dir():
            return out
        for child in directory.iterdir():
            if child.name.startswith(".") or not child.is_dir():
                continue
            size = 0
            for dirpath, _, filenames in os.walk(child):
                for name in filenames:
                    with contextlib.suppress(OSError):
                        size += os.stat(os.path.join(dirpath, name)).st_size
            try:
                used = (child / "meta.json").stat().st_mtime
            except OSError:
                used = 0.0
            out.append((child, size, used))
        return out

    def evict(self) -> list[str]:
        """Remove least recently used entries until the cache fits ``max_bytes``."""
        entries = sorted(self.entries(), key=lambda e: e[2])
        total = sum(size for _, size, _ in entries)
        removed: list[str] = []
        for path, size, _ in entries:
            if total <= self.max_bytes:
                break
            self._remove(path)
            total -= size
            removed.append(path.name)
        return removed

    def clean(self) -> tuple[int, int]:
        """Remove every entry; returns (entries, bytes) removed."""
        entries = self.entries()
        for path, _, _ in entries:
            self._remove(path)
        directory = self._path()
        if directory.is_dir():
            for leftover in directory.glob(".*"):
                remove_tree(leftover)
        return len(entries), sum(size for _, size, _ in entries)


def _relative_parts(path: str, root: str) -> tuple[str, ...] | None:
    """``path``'s components below ``root`` (``Path.relative_to(root).parts``), ``None`` when it
    is not below it."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    base = [p for p in root.split("/") if p not in ("", ".")]
    if path.startswith("/") != root.startswith("/") or parts[: len(base)] != base:
        return None
    return tuple(parts[len(base) :])
