"""A registry of the servers a run started, so that the next run removes a crashed run's leftovers.

Each server gets a small JSON record, written *before* anything is created, naming the run's owner
process (pid + start time, host, pid namespace) and a handle that says how to stop and remove the
server. A record whose owner is dead is swept: the server is stopped, its files deleted, the record
removed. Records of owners on another host or in another pid namespace are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from ..owner import Owner as Owner
from ..safe_write import write_output
from .errors import ServiceConfigError

Handle = dict[str, Any]


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (0700, or 0711 as root so service users can traverse it) and check it.

    Refuses a directory that is a symlink or belongs to another user: the registry decides which
    processes get killed, so nobody else may write to it.
    """
    mode = 0o711 if os.geteuid() == 0 else 0o700
    try:
        path.mkdir(parents=True, exist_ok=True, mode=mode)
        info = path.lstat()
    except OSError as exc:
        raise ServiceConfigError(
            f"cannot create the services runtime directory {path}: {exc.strerror}; "
            "set CLEANROOM_SERVICES_RUNTIME_DIR to a writable directory"
        ) from None
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise ServiceConfigError(f"services runtime directory {path} is not a plain directory")
    if info.st_uid != os.geteuid():
        raise ServiceConfigError(
            f"services runtime directory {path} belongs to uid {info.st_uid}, not to you: "
            "set CLEANROOM_SERVICES_RUNTIME_DIR to a directory of your own"
        )
    current = stat.S_IMODE(info.st_mode)
    if current & 0o022 or (os.geteuid() == 0 and not current & 0o001):
        path.chmod(mode)
    return path


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` so that readers see the old file or the new one, never half of it."""
    write_output(path, json.dumps(data, indent=1, sort_keys=True), mode=0o600)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` if it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Registry:
    """The records of one runtime directory (``<runtime_dir>/registry/*.json``)."""

    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        self.dir = runtime_dir / "registry"

    def _ensure(self) -> None:
        ensure_private_dir(self.runtime_dir)
        ensure_private_dir(self.dir)

    def add(self, *, service: str, run_id: str, owner: Owner, handle: Handle) -> str:
        """Record a server about to be created; returns the record id."""
        self._ensure()
        record_id = f"{run_id}-{service}-{uuid.uuid4().hex[:6]}"
        self._write(record_id, service, run_id, owner, handle)
        return record_id

    def update(self, record_id: str, handle: Handle) -> None:
        """Replace the handle of a record (e.g. once the server's pid is known)."""
        data = read_json(self.dir / f"{record_id}.json")
        if data is None:
            return
        data["handle"] = handle
        write_json_atomic(self.dir / f"{record_id}.json", data)

    def remove(self, record_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{record_id}.json").unlink()

    def _write(
        self, record_id: str, service: str, run_id: str, owner: Owner, handle: Handle
    ) -> None:
        write_json_atomic(
            self.dir / f"{record_id}.json",
            {
                "id": record_id,
                "service": service,
                "run_id": run_id,
                "owner": asdict(owner),
                "handle": handle,
                "created": time.time(),
            },
        )

    def records(self) -> Iterator[dict[str, Any]]:
        """Every readable record (unreadable ones are skipped, never deleted blindly)."""
        if not self.dir.is_dir():
            return
        for path in sorted(self.dir.glob("*.json")):
            data = read_json(path)
            if data is not None and "owner" in data and "handle" in data:
                yield data

    def sweep(self, stop: Callable[[Handle], str]) -> list[str]:
        """Stop and remove every server whose owner is dead; returns what was removed.

        ``stop(handle)`` removes one server and returns a description; if it raises, the record is
        kept so that a later run tries again.
        """
        removed = []
        for record in self.records():
            owner = Owner.from_json(record["owner"])
            if owner.is_alive():
                continue
            try:
                description = stop(record["handle"])
            except Exception as exc:  # keep the record, say why
                removed.append(f"could not remove {record['id']} (tried again next run): {exc}")
                continue
            self.remove(record["id"])
            removed.append(
                f"removed {record['service']} of crashed run {record['run_id']}: {description}"
            )
        return removed


ServerT = TypeVar("ServerT")


@dataclass
class Started(Generic[ServerT]):
    """A server a provider started for the run, and its record in the leftovers registry
    (``None``: nothing to remove after a crash, e.g. an external Redis)."""

    server: ServerT
    handle: Handle
    record_id: str | None
    registry: Registry | None
