"""Measuring containers through the cgroups they run in (v1, cgroupfs driver, local engine)."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..owner import Owner
from .engine import unix_socket_path

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
