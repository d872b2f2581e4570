"""The ``podman`` backend: the docker backend on Podman's Docker-compatible API socket.

The same containers are made through the same API (see :mod:`.docker` for what they isolate), on
the socket that ``podman system service`` serves: ``CLEANROOM_PODMAN_HOST``, else that of
``scripts/podman-engine.sh`` (which starts the service as root and builds the image with
``scripts/podman-engine.sh images``), else Podman's own (``/run/podman/podman.sock`` for root,
``$XDG_RUNTIME_DIR/podman/podman.sock`` for another user). Three differences from Docker are
bridged here: Podman gives containers 1048576 open files and processes unless told otherwise
(which its runtime cannot set where the service's own hard limits are lower), so each container
gets the service's own limits, as Docker's inherit the daemon's; and Podman refuses an init
process in the host's PID namespace (policies with ``isolate_pids=False``), where the command
then runs without one; and Podman copies the image's content into a tmpfs mount, which must stay
empty to hide a path. Registered through the entry point ``podman``, as a third party's
backend would be.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from typing import Any

from ..containers.engine import CLEANROOM_PODMAN_HOST as CLEANROOM_PODMAN_HOST
from ..containers.engine import PODMAN_HOST_ENV, podman_host, unix_socket_path
from ..errors import BackendUnavailableError
from ..policy import Policy
from .base import ENFORCED_BY_PODMAN
from .docker import DockerBackend

#: Environment variable naming the Podman API socket (``unix://...``).
HOST_ENV = PODMAN_HOST_ENV
ENGINE_SCRIPT = "scripts/podman-engine.sh"
#: Present where cgroup v2 is the only hierarchy (the service shares this machine's kernel).
_UNIFIED_ONLY = Path("/sys/fs/cgroup/cgroup.controllers")
_WRITABLE_ON_READ_ONLY_ROOT = ("/var/tmp", "/run")
_READ_ONLY_EMPTY = "ro,nosuid,nodev,noexec,mode=0755,size=4096"
#: ``/proc/PID/limits`` rows of the limits a container gets from the service.
_INHERITED = {"nofile": "Max open files", "nproc": "Max processes"}


class PodmanBackend(DockerBackend):
    """Runs each command in its own container on a Podman service."""

    name = "podman"
    engine_script = ENGINE_SCRIPT
    container_cgroup_prefix = "libpod-"
    limits_enforced_by = (ENFORCED_BY_PODMAN,)

    def __init__(self, *, host: str | None = None, image: str | None = None) -> None:
        super().__init__(host=host, image=image)
        self._service_limits: dict[str, int] | None = None

    @classmethod
    def default_host(cls) -> str:
        """``CLEANROOM_PODMAN_HOST``, else the first of Podman's sockets that exists."""
        return podman_host()

    def check(self, policy: Policy) -> None:
        """As the docker backend's; and a rootless service on cgroup v1, whose containers get no
        cgroup limits (Podman ignores them there, while its API says it can set them), is
        refused for a policy with memory, task or CPU-quota limits."""
        limited = [
            field
            for field in ("memory_limit", "max_processes", "cpu_quota")
            if getattr(policy, field) is not None
        ]
        peer = service_peer(self.host)
        if limited and peer is not None and peer[1] != 0 and not _UNIFIED_ONLY.exists():
            raise BackendUnavailableError(
                f"the podman service at {self.host} runs rootless (uid {peer[1]}) on cgroup v1, "
                f"where Podman ignores container limits: it cannot enforce {', '.join(limited)} "
                f"of policy {policy.name!r}; use a rootful service ({ENGINE_SCRIPT} start), "
                "cgroup v2 with systemd delegation, or a policy without these limits"
            )
        super().check(policy)

    def tune_container(self, host_config: dict[str, Any], policy: Policy) -> None:
        """Give the container the service's own open-file and process limits unless the policy
        sets them, and no init process in the host's PID namespace."""
        if host_config.get("PidMode") == "host":
            host_config.pop("Init", None)
        # Podman fills a tmpfs with what the image has at its place; Docker's start empty,
        # which is what hides a path.
        tmpfs = host_config.get("Tmpfs") or {}
        if host_config.get("ReadonlyRootfs"):
            # Podman mounts a writable tmpfs on these of a read-only root; Docker does not.
            for target in _WRITABLE_ON_READ_ONLY_ROOT:
                tmpfs.setdefault(target, _READ_ONLY_EMPTY)
        for target, options in tmpfs.items():
            tmpfs[target] = f"{options},notmpcopyup" if options else "notmpcopyup"
        host_config["Tmpfs"] = tmpfs
        ulimits = list(host_config.get("Ulimits") or [])
        given = {u["Name"] for u in ulimits}
        for name, hard in self._limits().items():
            if name not in given:
                ulimits.append({"Name": name, "Soft": hard, "Hard": hard})
        host_config["Ulimits"] = ulimits

    def _limits(self) -> dict[str, int]:
        if self._service_limits is None:
            self._service_limits = service_limits(self.host)
        return self._service_limits


def service_peer(host: str) -> tuple[int, int] | None:
    """``(pid, uid)`` of the process serving ``host``, from the socket's peer credentials."""
    path = unix_socket_path(host)
    if path is None:
        return None
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(path))
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, _ = struct.unpack("3i", creds)
    return pid, uid


def service_limits(host: str) -> dict[str, int]:
    """The hard open-file and process limits of the process serving ``host``; those it has
    none of (unlimited, unreadable) are left out."""
    peer = service_peer(host)
    try:
        rows = Path(f"/proc/{peer[0]}/limits").read_text().splitlines() if peer else []
    except OSError:
        return {}
    limits: dict[str, int] = {}
    for name, row_name in _INHERITED.items():
        for row in rows:
            if row.startswith(row_name):
                hard = row[len(row_name) :].split()[1]
                if hard.isdigit():
                    limits[name] = int(hard)
    return limits
