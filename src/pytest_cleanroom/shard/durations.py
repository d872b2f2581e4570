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
#: A shard's own measured durations, written beside its attestations.
SHARD_FILE = "durations.json"


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
        known.update(measured)
        write(path, known)


def write(path: Path, durations: Mapping[str, float]) -> None:
    """Write ``durations`` to ``path`` (sorted, rounded to 0.1 ms), atomically."""
    rounded = {k: round(v, 4) for k, v in sorted(durations.items())}
    write_output(path, json.dumps(rounded, indent=1) + "\n")
