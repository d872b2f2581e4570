"""The durations file: ``{"node id": seconds}``, read to split a run, updated by each shard.

Updates hold an exclusive lock on the file's ``.lock`` companion, read the file again and write
it atomically, so shards finishing on one machine at the same time keep each other's figures.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from ..safe_write import write_output

DEFAULT_NAME = ".cleanroom-durations.json"


class DurationsFileError(ValueError):
    """The durations file exists but is not a JSON object of numbers."""


def read(path: Path) -> dict[str, float]:
    """The durations in ``path`` (empty when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise DurationsFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DurationsFileError(f"{path}: not JSON ({exc}); remove it to start afresh") from None
    if not isinstance(data, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in data.values()
    ):
        raise DurationsFileError(
            f'{path}: expected an object of {{"node id": seconds}}; remove it to start afresh'
        )
    return {str(k): float(v) for k, v in data.items()}


def update(path: Path, measured: Mapping[str, float]) -> None:
    """Record ``measured`` in ``path``, keeping every other test's figure."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock", timeout=60):
        try:
            known = read(path)
        except DurationsFileError:
            known = {}  # an unreadable file is replaced by what this run measured
        known.update({k: round(v, 4) for k, v in measured.items()})
        write_output(path, json.dumps(dict(sorted(known.items())), indent=1) + "\n")
