"""Stopping a server and removing everything it left, from the handle recorded when it started.

Used both by the run that started the server (controller-side teardown) and by a later run that
sweeps a crashed run's leftovers, so it relies only on what the handle and the disk say.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from . import procutil
from .registry import Handle

if TYPE_CHECKING:
    from .settings import ServiceSettings

#: Handles of external servers name their kind in ``kind`` (older records) or ``service``.
EXTERNAL_HANDLES = {
    "external-postgres": "postgres",
    "external-mysql": "mysql",
    "external-redis": "redis",
}


def sweep_leftovers(settings: ServiceSettings) -> list[str]:
    """Remove what crashed runs left (servers, data directories, containers) under the
    settings' runtime directory; returns what was removed or could not be."""
    if not (settings.runtime_dir / "registry").is_dir():
        return []
    from .errors import ServiceError
    from .registry import Registry

    try:
        return Registry(settings.runtime_dir).sweep(stop)
    except ServiceError as exc:
        return [f"leftover sweep skipped: {exc}"]


def stop(handle: Handle, timeout: float = 10.0) -> str:
    """Stop the server described by ``handle`` (its kind's :meth:`~.protocol.ServiceKind.stop`
    when the kind is known); returns a short description of what was done."""
    from .kinds import kinds

    service = handle.get("service") or EXTERNAL_HANDLES.get(str(handle.get("kind")))
    known = kinds()
    if service in known:
        return known[service].stop(handle)
    return stop_started(handle, timeout)


def stop_started(handle: Handle, timeout: float = 10.0) -> str:
    """Stop a server the plugin started: a process or a container."""
    kind = handle.get("kind")
    if kind == "process":
        return stop_process(handle, timeout)
    if kind == "container":
        from .container_provider import remove_container

        return remove_container(handle)
    raise ValueError(f"unknown service handle kind {kind!r}")


def _pid_from_pidfile(handle: Handle) -> int | None:
    pidfile = handle.get("pidfile")
    if not pidfile:
        return None
    try:
        first = Path(handle["server_dir"], pidfile).read_text().split("\n", 1)[0].strip()
        return int(first)
    except (OSError, ValueError):
        return None


def _belongs_to(pid: int, paths: list[Path]) -> bool:
    """A server runs with its working directory inside one of its directories."""
    cwd = procutil.process_cwd(pid)
    if cwd is None:
        return False
    return any(cwd == path or path in cwd.parents for path in paths)


def stop_process(handle: Handle, timeout: float = 10.0) -> str:
    """Stop a server process (and its process group) and delete its directories."""
    server_dir = Path(handle["server_dir"])
    paths = [Path(p) for p in handle.get("paths", [server_dir])]
    sig = int(handle.get("stop_signal", signal.SIGTERM))
    stopped = []
    pid = handle.get("pid")
    token = handle.get("token")
    if pid and procutil.is_alive(int(pid), token):
        procutil.terminate_group(int(pid), token, sig, timeout)
        stopped.append(int(pid))
    else:
        # Crashed before the pid was recorded (or the record is older): trust the pidfile only if
        # that process really runs in this server's directory.
        file_pid = _pid_from_pidfile(handle)
        if file_pid and _belongs_to(file_pid, paths):
            procutil.terminate_group(file_pid, procutil.start_token(file_pid), sig, timeout)
            stopped.append(file_pid)
    parts = [f"stopped pid {p}" for p in stopped]
    for path in paths:
        if path.exists():
            with contextlib.suppress(FileNotFoundError):
                shutil.rmtree(path)
            parts.append(f"removed {path}")
    return ", ".join(parts) or f"nothing left of {server_dir}"
