"""What a killed run leaves behind, finished or removed by the next run (under the run lock).

A run killed at any point leaves the project as it was or fully updated, plus, at worst,
temporary files: restores recorded in ``.ggen/journal`` are finished or undone
(:func:`ggen_lifecycle._restore.recover`), half-built cache entries (``.ggen/cache/.tmp-*``) and
entries half-way through removal (``.del-*``) are removed, and so are the temporary files of
interrupted writes of ``state.json``, ``hashes.json`` and ``run.lock.json``.
"""

from __future__ import annotations

import os
import time

from . import _restore, files
from .state import LOCK_TIMEOUT, FileLock, LockTimeout

TYPE_CHECKING = False  # typing itself is not imported: the cache-hit fast path loads this module
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

#: Files the run writes through :func:`ggen_lifecycle.state.atomic_write` (temporary names
#: ``.NAME.HEX.tmp`` beside them).
STATE_FILES = ("state.json", "hashes.json", "run.lock.json")
#: A temporary file of a validated make.toml older than this is a leftover, not a write going on.
STALE_SECONDS = 600.0


def pending(state_dir: Path | str) -> bool:
    """Whether :func:`clean_up` has anything to do in ``state_dir`` (read-only)."""
    journal = os.path.join(state_dir, "journal")
    if files.names(journal, "restore-", ".json") or files.names(journal, ".restore-", ".tmp"):
        return True
    cache = os.path.join(state_dir, "cache")
    if any(files.names(cache, prefix) for prefix in (".tmp-", ".del-")):
        return True
    if any(files.names(state_dir, f".{name}.", ".tmp") for name in STATE_FILES):
        return True
    now = time.time()
    validated = os.path.join(state_dir, "validated")
    for temp in files.names(validated, ".", ".tmp"):
        try:
            if now - os.stat(os.path.join(validated, temp)).st_mtime > STALE_SECONDS:
                return True
        except OSError:
            pass
    return False


def clean_up(root: Path, state_dir: Path, warn: Callable[[str], None]) -> None:
    """Finish or undo what a killed run left in ``state_dir``; call it holding the run lock."""
    import contextlib

    for action in _restore.recover(root, state_dir / "journal"):
        warn(f"a killed run left a cache restore half-done: {action}")
    cache = state_dir / "cache"
    for prefix in (".tmp-", ".del-"):
        for leftover in files.named(cache, prefix):
            files.remove_tree(leftover)
    temps = [t for name in STATE_FILES for t in files.named(state_dir, f".{name}.", ".tmp")]
    if temps:
        try:
            with FileLock(state_dir / "state.json.lock").held(LOCK_TIMEOUT):
                for temp in temps:
                    temp.unlink(missing_ok=True)
        except (LockTimeout, OSError):
            pass  # another process writes state.json now: its temporary file is not a leftover
    now = time.time()
    for temp in files.named(state_dir / "validated", ".", ".tmp"):
        with contextlib.suppress(OSError):
            if now - temp.stat().st_mtime > STALE_SECONDS:
                temp.unlink()
