"""Docker engine helpers shared by the ``docker`` backend and the container service provider.

- :func:`connect` finds the engine through ``DOCKER_HOST`` and explains, distinctly, a missing
  socket (:class:`DockerSocketMissingError`) and a socket nobody answers on
  (:class:`DockerEngineDownError`), each naming the fix.
- :func:`owner_labels` labels what this process creates (run id, owner pid, its start time and the
  host); :func:`sweep_leftovers` removes labelled containers and volumes whose owner process is
  gone, which is how a crashed run's leftovers are cleaned up without testcontainers' reaper.
- :func:`configure_testcontainers` points testcontainers at published ports on 127.0.0.1.

The docker SDK is imported only inside functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .errors import BackendUnavailableError
from .owner import Owner

if TYPE_CHECKING:
    from docker import DockerClient

ENGINE_SCRIPT = "scripts/docker-engine.sh"
IMAGES_SCRIPT = "scripts/build-images.sh"
CLEANROOM_DOCKER_HOST = "unix:///run/cleanroom-docker/docker.sock"
STANDARD_DOCKER_HOST = "unix:///var/run/docker.sock"

LABEL_RUN = "io.cleanroom.run"
LABEL_OWNER_PID = "io.cleanroom.owner-pid"
LABEL_OWNER_START = "io.cleanroom.owner-start"
LABEL_OWNER_HOST = "io.cleanroom.owner-host"
LABEL_OWNER_PIDNS = "io.cleanroom.owner-pidns"
LABEL_ROLE = "io.cleanroom.role"

_START_FIX = (
    "start a Docker engine (e.g. `sudo systemctl start docker`; in a pytest-cleanroom "
    f'checkout, `{ENGINE_SCRIPT} start` and `eval "$({ENGINE_SCRIPT} env)"`), or point '
    "DOCKER_HOST at a running engine"
)


class DockerUnavailableError(BackendUnavailableError):
    """No Docker engine can be used; the message names the fix."""


class DockerSocketMissingError(DockerUnavailableError):
    """``DOCKER_HOST`` names a unix socket that does not exist: no engine was ever started."""


class DockerEngineDownError(DockerUnavailableError):
    """The socket exists (or the address is given) but no engine answers on it."""


class DockerImageMissingError(DockerUnavailableError):
    """The engine answers but the image is not there (and is never pulled)."""


def docker_host() -> str:
    """``DOCKER_HOST``, else the socket of scripts/docker-engine.sh if present, else Docker's."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    if host:
        return host
    if Path(urlparse(CLEANROOM_DOCKER_HOST).path).exists():
        return CLEANROOM_DOCKER_HOST
    return STANDARD_DOCKER_HOST


def unix_socket_path(host: str) -> Path | None:
    """The socket file of a ``unix://`` address, ``None`` for other schemes."""
    parsed = urlparse(host)
    return Path(parsed.path) if parsed.scheme == "unix" else None


def engine_shares_our_mounts(host: str) -> bool:
    """Whether the engine listening at ``host`` sees this process's mounts (the same mount
    namespace), so that a tmpfs mounted here can be bound into its containers."""
    sock_path = unix_socket_path(host)
    if sock_path is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(sock_path))
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        pid = struct.unpack("3i", creds)[0]
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino
    except OSError:
        return False


def connect(host: str | None = None, *, timeout: float = 60.0) -> DockerClient:
    """A docker SDK client on an engine that answered a ping.

    Raises :class:`DockerSocketMissingError` or :class:`DockerEngineDownError` with the fix.
    """
    host = host or docker_host()
    sock = unix_socket_path(host)
    if sock is not None and not sock.exists():
        raise DockerSocketMissingError(
            f"no Docker engine: the socket {sock} (DOCKER_HOST={host}) does not exist; "
            + _START_FIX
        )
    if sock is not None and not sock.is_socket():
        raise DockerEngineDownError(
            f"no Docker engine: {sock} (DOCKER_HOST={host}) is not a socket; " + _START_FIX
        )
    try:
        import docker
        import docker.errors
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
        raise DockerUnavailableError(
            "the docker SDK is not installed: pip install 'pytest-cleanroom[docker]'"
        ) from exc
    try:
        client = docker.DockerClient(base_url=host, timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as exc:
        where = f"the socket {sock} exists but" if sock is not None else f"at {host}"
        raise DockerEngineDownError(
            f"the Docker engine is down: {where} nobody answers (DOCKER_HOST={host}: {exc}); "
            + _START_FIX
        ) from exc
    return client


def require_image(client: DockerClient, image: str) -> None:
    """Raise :class:`DockerImageMissingError` naming the build script when ``image`` is absent."""
    import docker.errors

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise DockerImageMissingError(
            f"the Docker image {image!r} is not on the engine at {client.api.base_url} and images "
            f"are never pulled: build the project's images with `{IMAGES_SCRIPT}`, "
            "or name an image you built with CLEANROOM_DOCKER_IMAGE"
        ) from None


# -- ownership labels and the leftover sweep ----------------------------------------------------


_RUN_ID: str | None = None


def run_id() -> str:
    """This process's run id: ``CLEANROOM_RUN_ID`` if set, else a random one chosen once."""
    global _RUN_ID
    if _RUN_ID is None:
        _RUN_ID = os.environ.get("CLEANROOM_RUN_ID") or uuid.uuid4().hex[:16]
    return _RUN_ID


def owner_labels(run: str | None = None, *, role: str | None = None) -> dict[str, str]:
    """Labels that let :func:`sweep_leftovers` find a container once its creator has died.

    ``run`` defaults to :func:`run_id`; ``role`` (e.g. ``"backend"``, ``"postgres"``) is free text
    for humans and filters.
    """
    owner = Owner.current()
    labels = {
        LABEL_RUN: run or run_id(),
        LABEL_OWNER_PID: str(owner.pid),
        LABEL_OWNER_START: owner.token or "",
        LABEL_OWNER_HOST: owner.host,
        LABEL_OWNER_PIDNS: owner.pidns,
    }
    if role:
        labels[LABEL_ROLE] = role
    return labels


def owner_of(labels: Mapping[str, str]) -> Owner | None:
    """The :class:`Owner` recorded in ``labels``, or None when they are not ours or malformed."""
    try:
        pid = int(labels[LABEL_OWNER_PID])
    except (KeyError, ValueError):
        return None
    return Owner(
        pid,
        labels.get(LABEL_OWNER_START, ""),
        labels.get(LABEL_OWNER_HOST, ""),
        labels.get(LABEL_OWNER_PIDNS, ""),
    )


def sweep_leftovers(client: DockerClient | None = None, *, role: str | None = None) -> list[str]:
    """Remove labelled containers (running or not) and volumes whose owner process is dead.

    Only objects carrying :data:`LABEL_OWNER_PID` are considered, and only those whose owner ran
    on this host; ``role`` narrows the sweep to one :data:`LABEL_ROLE`. Returns the names of the
    containers and volumes removed. Safe to call from several processes at once.
    """
    import docker.errors

    own_client = client is None
    client = client or connect()
    filters: dict[str, Any] = {"label": [LABEL_OWNER_PID]}
    if role:
        filters["label"].append(f"{LABEL_ROLE}={role}")
    removed: list[str] = []
    try:
        for container in client.containers.list(all=True, filters=filters):
            owner = owner_of(container.labels)
            if owner is None or owner.is_alive():
                continue
            try:
                container.remove(force=True, v=True)
                removed.append(container.name)
            except docker.errors.NotFound:
                pass  # another sweeper got there first
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # 409: removal already in progress
                    raise
        for volume in client.volumes.list(filters=filters):
            owner = owner_of(volume.attrs.get("Labels") or {})
            if owner is None or owner.is_alive():
                continue
            try:
                volume.remove(force=True)
                removed.append(volume.name)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # still in use by a container being removed
                    raise
    finally:
        if own_client:
            client.close()
    return removed


# -- testcontainers -----------------------------------------------------------------------------


def configure_testcontainers() -> None:
    """Make testcontainers reach published ports on 127.0.0.1 of a local engine.

    testcontainers guesses it runs inside a container when ``/.dockerenv`` exists (true on many CI
    VMs built from images) and then connects to the bridge gateway, where ports published on
    127.0.0.1 are not listening. Unless the user chose a connection mode (``TC_HOST``,
    ``TESTCONTAINERS_HOST_OVERRIDE``, ``TESTCONTAINERS_CONNECTION_MODE``), a local engine (a unix
    socket) is reached through 127.0.0.1 and the mapped ports.
    """
    if unix_socket_path(docker_host()) is None:
        return
    if any(
        os.environ.get(v)
        for v in ("TC_HOST", "TESTCONTAINERS_HOST_OVERRIDE", "TESTCONTAINERS_CONNECTION_MODE")
    ):
        return
    from testcontainers.core.config import ConnectionMode, testcontainers_config

    testcontainers_config.tc_host_override = "127.0.0.1"
    testcontainers_config.connection_mode_override = ConnectionMode.docker_host


# -- measuring containers through their cgroups (v1, cgroupfs driver, local engine) -------------

#: The cgroup every measured container is created under (``cgroup_parent``), in every hierarchy.
CGROUP_TOP = "cleanroom-docker"
_cgroup_counter = itertools.count()
_cgroup_lock = threading.Lock()
_cgroup_mounts: dict[str, Path] | None = None


def _v1_hierarchies() -> dict[str, Path]:
    """``{controller: mount point}`` of the cgroup v1 hierarchies mounted at their root."""
    global _cgroup_mounts
    with _cgroup_lock:
        if _cgroup_mounts is None:
            found: dict[str, Path] = {}
            try:
                with open("/proc/self/mountinfo") as f:
                    for line in f:
                        left, _, right = line.partition(" - ")
                        fields = left.split()
                        fstype, _source, options = right.split()[:3]
                        if fstype == "cgroup" and fields[3] == "/":
                            for option in options.split(","):
                                found.setdefault(option, Path(fields[4]))
            except OSError:
                found = {}
            _cgroup_mounts = found
            if found:
                _sweep_cgroups(found)
        return _cgroup_mounts


def _sweep_cgroups(hierarchies: dict[str, Path]) -> None:
    """Remove measuring groups left by dead processes (names start with ``<pid>-<start>-``)."""
    names: set[str] = set()
    for mount in set(hierarchies.values()):
        top = mount / CGROUP_TOP
        with contextlib.suppress(OSError):
            names.update(entry.name for entry in os.scandir(top) if entry.is_dir())
    for name in names:
        owner = Owner.of_group(name)
        if owner is not None and owner.is_alive():
            continue
        ContainerCgroups(f"/{CGROUP_TOP}/{name}", hierarchies).remove(attempts=1)


@dataclass(frozen=True)
class CgroupUsage:
    """What a container's processes used: peak memory (bytes), CPU time (seconds)."""

    peak_memory: int | None
    cpu_time: float | None


class ContainerCgroups:
    """A ``cgroup_parent`` of one container, created by this process, read after it exited.

    Docker's cgroupfs driver puts the container's groups at ``<parent>/<container id>`` in every
    hierarchy; their parent keeps the hierarchical peak memory and CPU time once the container's
    own groups are gone, and the live counters (OOM kills, task-limit hits, CPU) are read from
    the container's groups while it runs. Only for a local engine with cgroup v1 and the
    cgroupfs driver, run as root (see :meth:`for_engine`).
    """

    def __init__(self, parent: str, hierarchies: dict[str, Path]) -> None:
        self.parent = parent
        self.hierarchies = hierarchies
        self.container_id: str | None = None
        #: What the engine puts before the container's id to name its groups (Podman:
        #: ``libpod-``; Docker: nothing).
        self.own_prefix = ""

    @classmethod
    def for_engine(cls, engine_info: Mapping[str, Any], host: str) -> ContainerCgroups | None:
        """A new parent group, or None when containers of this engine cannot be measured here."""
        if (
            os.geteuid() != 0
            or unix_socket_path(host) is None
            or engine_info.get("CgroupDriver") != "cgroupfs"
            or str(engine_info.get("CgroupVersion", "1")) != "1"
        ):
            return None
        hierarchies = _v1_hierarchies()
        if not all(c in hierarchies for c in ("memory", "cpuacct", "pids")):
            return None
        name = f"{Owner.current().group_prefix()}{next(_cgroup_counter)}"
        return cls(f"/{CGROUP_TOP}/{name}", hierarchies)

    def _file(self, controller: str, name: str, *, own: bool) -> Path:
        path = self.hierarchies[controller] / self.parent.lstrip("/")
        if own and self.container_id:
            path = path / f"{self.own_prefix}{self.container_id}"
        return path / name

    def _int(self, controller: str, name: str, *, own: bool) -> int | None:
        try:
            return int(self._file(controller, name, own=own).read_text())
        except (OSError, ValueError):
            return None

    def _counter(self, controller: str, name: str, key: str) -> int:
        try:
            text = self._file(controller, name, own=True).read_text()
        except OSError:
            return 0
        for line in text.splitlines():
            k, _, value = line.partition(" ")
            if k == key:
                return int(value)
        return 0

    def oom_kills(self) -> int:
        """OOM kills in the running container's memory group."""
        return self._counter("memory", "memory.oom_control", "oom_kill")

    def pids_max_hits(self) -> int:
        """Forks refused by the running container's task limit."""
        return self._counter("pids", "pids.events", "max")

    def cpu_time(self) -> float | None:
        """CPU seconds used so far by the container's processes."""
        used = self._int("cpuacct", "cpuacct.usage", own=False)
        return None if used is None else used / 1e9

    def usage(self) -> CgroupUsage:
        """Peak memory and CPU time of everything that ran under the parent group."""
        return CgroupUsage(
            self._int("memory", "memory.max_usage_in_bytes", own=False), self.cpu_time()
        )

    def remove(self, attempts: int = 100) -> None:
        """Remove the parent group from every hierarchy (once its container is removed);
        a group still busy after ``attempts`` tries (10 ms apart) is left for a later sweep."""
        for mount in set(self.hierarchies.values()):
            path = mount / self.parent.lstrip("/")
            _remove_empty_children(path)  # an engine's own, such as Podman's conmon
            for attempt in range(attempts):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or attempt == attempts - 1:
                        break
                    time.sleep(0.01)


def _remove_empty_children(group: Path) -> None:
    """Remove the groups below ``group`` that hold no task (one that does stays, busy)."""
    try:
        children = [entry for entry in group.iterdir() if entry.is_dir()]
    except OSError:
        return
    for child in children:
        with contextlib.suppress(OSError):
            child.rmdir()


# -- refused forks, from the kernel's own log ----------------------------------------------------

KMSG = "/dev/kmsg"
_FORK_REFUSED = "fork rejected by pids controller in "


class KernelLog:
    """The kernel log's records written after this object was made (``/dev/kmsg``, root only).

    The pids controller logs "fork rejected by pids controller in <cgroup>" the first time it
    refuses a fork in a cgroup, in the refused fork itself: the record is there when the command
    ends, however soon after, while the container's cgroup (and its ``pids.events``) is removed
    with the container.
    """

    def __init__(self) -> None:
        self._fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.lseek(self._fd, 0, os.SEEK_END)
        except OSError:
            os.close(self._fd)
            raise
        self._seen: list[str] = []

    @classmethod
    def open(cls) -> KernelLog | None:
        """A reader from now on, or None when the kernel log cannot be read here."""
        try:
            return cls()
        except OSError:
            return None

    def _read(self) -> None:
        while True:
            try:
                record = os.read(self._fd, 8192)
            except BlockingIOError:
                return
            except BrokenPipeError:
                continue  # older records were overwritten; reading goes on with the next one
            except OSError:
                return
            if not record:
                return
            text = record.decode(errors="replace").partition(";")[2]
            self._seen.append(text.split("\n", 1)[0])

    def fork_refused_in(self, cgroup_name: str) -> bool:
        """Whether the pids controller refused a fork in a cgroup whose last path component is
        ``cgroup_name`` (a container id) since this reader was opened."""
        self._read()
        suffix = "/" + cgroup_name
        for message in self._seen:
            line = message.strip()
            if not line.endswith(suffix):
                continue
            # The path may arrive as a record of its own (a continuation split by other CPUs'
            # messages); an OOM report naming the same cgroup has other text around it.
            if _FORK_REFUSED in line or (line.startswith("/") and " " not in line):
                return True
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
