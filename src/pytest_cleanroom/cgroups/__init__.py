"""Per-command cgroups: limits, measurements and killing a whole process tree.

This describes cgroup v1; on a host with cgroup v2 only, :mod:`._v2` says what differs.

Each command gets its own group in the ``memory``, ``pids`` and ``cpuacct`` hierarchies (and
``freezer`` where mounted), created under the engine process's own group, in a
``pytest-cleanroom`` directory: ``memory.limit_in_bytes`` (and ``memsw``) caps the tree's memory,
``pids.max`` the number of tasks; ``memory.max_usage_in_bytes`` and ``cpuacct.usage`` measure
it; the freezer makes killing a fork bomb race-free. The command itself runs one level down, in
a group :data:`LEAF` of its own in every hierarchy the process is in (the others too: ``cpu``,
``devices``, ``name=systemd``, cgroup2...), which becomes the root of its cgroup namespace: a
command allowed user namespaces of its own may mount cgroupfs, and then sees and can change only
that subtree, never the limits above it nor anyone else's groups. It joins them before it starts
(the launcher writes ``0`` to each ``cgroup.procs``), so no descendant can be outside. Tasks
are found, frozen and killed in the whole subtree: groups the command made below its own
included.

A finished command's groups are released: what is left is killed at once; in the background,
once the last task has exited (a sandbox's init may still be tearing its namespaces down when
the result is known), the groups are kept for reuse by a later command (counters reset, limits
set again) or removed. :func:`flush` waits for that; :func:`remove_all` runs at interpreter
exit. If the process is killed outright, :mod:`~pytest_cleanroom.cgroups._reaper` kills what its
groups hold; groups left anyway are removed by the next process that uses cgroups (their names
carry the owner's pid and start time): in a background thread, within a time budget, and never
waiting for a group that cannot be removed yet (the sweep after it will).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import itertools
import os
import secrets
import select
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..owner import Owner
from . import _v2 as cgroup2

REQUIRED = ("memory", "pids", "cpuacct")
OPTIONAL = ("freezer",)
GROUP_DIR = "pytest-cleanroom"
#: The command's own cgroup, below its group in every hierarchy: the root of its cgroup
#: namespace, so that a nested user namespace mounting cgroupfs sees this subtree and nothing
#: above it (not the group's limits, not the host's groups).
LEAF = "task"
#: The key of the cgroup v2 hierarchy in :func:`parents`.
UNIFIED = "unified"
#: The CFS bandwidth period a CPU quota is a share of, in microseconds (the kernel's default).
CPU_PERIOD_US = 100_000

_lock = threading.Lock()
_parents: dict[str, Path] | None = None
_probed = False
_why_unavailable = ""
_unconfined: list[str] = []
_counter = itertools.count()
_T = TypeVar("_T")


_group_prefixes: dict[int, str] = {}


def _my_group_prefix() -> str:
    """The start of the names of this process's groups: its :class:`~.owner.Owner`."""
    pid = os.getpid()
    if pid not in _group_prefixes:
        _group_prefixes[pid] = Owner.current(pid).group_prefix()
    return _group_prefixes[pid]


def _v1_mounts() -> dict[str, tuple[str, str]]:
    """``{controller: (mount point, mount root)}`` of every cgroup hierarchy; the v2 one under
    the key :data:`UNIFIED`."""
    mounts: dict[str, tuple[str, str]] = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            fstype, _source, options = right.split()[:3]
            if fstype == "cgroup2":
                mounts.setdefault(UNIFIED, (fields[4], fields[3]))
            if fstype != "cgroup":
                continue
            for option in options.split(","):
                mounts.setdefault(option, (fields[4], fields[3]))
    return mounts


def _own_hierarchies() -> dict[str, str]:
    """``{hierarchy: this process's cgroup in it}``; a v1 hierarchy is named by its controllers
    (``cpu,cpuacct``, ``name=systemd``), the v2 one is :data:`UNIFIED`."""
    paths: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            paths[controllers or UNIFIED] = path
    return paths


def _own_paths() -> dict[str, str]:
    paths: dict[str, str] = {}
    for controllers, path in _own_hierarchies().items():
        for controller in controllers.split(","):
            paths[controller] = path
    return paths


def _parent_dir(mounts: dict[str, tuple[str, str]], key: str, path: str) -> Path | None:
    if key not in mounts:
        return None
    mountpoint, root = mounts[key]
    if root != "/" and path.startswith(root):
        path = path[len(root) :]
    return Path(mountpoint + path.rstrip("/")) / GROUP_DIR


def _confinement(mounts: dict[str, tuple[str, str]], parents: dict[str, Path]) -> None:
    """Add a parent for every other hierarchy this process is in; note those it cannot have."""
    global _unconfined
    _unconfined = []
    for hierarchy, path in _own_hierarchies().items():
        controllers = hierarchy.split(",")
        if any(c in parents for c in controllers):
            continue
        key = next((c for c in controllers if c in mounts), None)
        parent = _parent_dir(mounts, key, path) if key is not None else None
        if parent is None:
            _unconfined.append(f"the cgroup hierarchy {hierarchy!r} is not mounted")
            continue
        try:
            parent.mkdir(exist_ok=True)
            if "cpuset" in controllers:
                _inherit_cpuset(parent)
        except OSError as exc:
            _unconfined.append(f"cannot create cgroup {parent}: {exc}")
            continue
        parents[hierarchy] = parent


def _inherit_cpuset(group: Path) -> None:
    """A new cpuset group has no CPUs and no memory nodes: take its parent's."""
    for name in ("cpuset.cpus", "cpuset.mems"):
        value = (group.parent / name).read_text().strip()
        if (group / name).read_text().strip() != value:
            _write(group / name, value)


def unconfined() -> list[str]:
    """Why some cgroup hierarchy could not be given a group per command (empty: none)."""
    parents()
    return list(_unconfined)


def _discover() -> dict[str, Path]:
    global _why_unavailable
    try:
        mounts = _v1_mounts()
        own = _own_paths()
    except OSError as exc:
        _why_unavailable = f"cannot read the process's cgroups: {exc}"
        return {}
    if os.geteuid() != 0:
        return _discover_delegated(mounts)
    if cgroup2.is_unified_only(mounts, UNIFIED):
        mountpoint, root = mounts[UNIFIED]
        parent, why = cgroup2.root_parent(mountpoint, root, GROUP_DIR)
        if parent is None:
            _why_unavailable = why
            return {}
        unified = {UNIFIED: parent}
        _confinement(mounts, unified)
        return unified
    parents: dict[str, Path] = {}
    for controller in REQUIRED + OPTIONAL:
        if controller not in mounts or controller not in own:
            if controller in REQUIRED:
                _why_unavailable = f"no cgroup v1 {controller!r} hierarchy is mounted"
                return {}
            continue
        parent = _parent_dir(mounts, controller, own[controller])
        assert parent is not None
        try:
            parent.mkdir(exist_ok=True)
        except OSError as exc:
            if controller in REQUIRED:
                _why_unavailable = f"cannot create cgroup {parent}: {exc}"
                return {}
            continue
        parents[controller] = parent
    _confinement(mounts, parents)
    return parents


def _own_unified_dir(mounts: dict[str, tuple[str, str]]) -> Path:
    """This process's cgroup v2 directory."""
    mountpoint, root = mounts[UNIFIED]
    path = _own_hierarchies().get(UNIFIED, "/")
    if root != "/" and path.startswith(root):
        path = path[len(root) :]
    return Path(mountpoint + path.rstrip("/"))


def _discover_delegated(mounts: dict[str, tuple[str, str]]) -> dict[str, Path]:
    """An unprivileged engine's groups: in the delegated cgroup v2 subtree it is in, or in a
    systemd scope with ``Delegate=yes`` it asks the user's systemd for."""
    global _why_unavailable
    if not cgroup2.is_unified_only(mounts, UNIFIED):
        _why_unavailable = (
            "cgroups need root here: this machine mounts cgroup v1, which has no delegation to "
            "unprivileged users (cgroup v2 with systemd has: see docs/platforms.md)"
        )
        return {}
    own = _own_unified_dir(mounts)
    parent, why = cgroup2.delegated_parent(own, GROUP_DIR)
    if parent is None:
        failed = cgroup2.start_delegated_scope(lambda: str(_own_unified_dir(mounts)))
        if failed:
            _why_unavailable = (
                f"no delegated cgroup v2 subtree for uid {os.geteuid()}: {why}, and {failed}; "
                "run the tests inside one: systemd-run --user --scope -p Delegate=yes pytest ..."
            )
            return {}
        parent, why = cgroup2.delegated_parent(_own_unified_dir(mounts), GROUP_DIR)
        if parent is None:
            _why_unavailable = f"the delegated systemd scope cannot be used: {why}"
            return {}
    return {UNIFIED: parent}


#: Set to ``off`` to use the rlimit fallback even where cgroups work (what unprivileged users get).
SWITCH = "CLEANROOM_CGROUPS"


def parents() -> dict[str, Path] | None:
    """The ``pytest-cleanroom`` directory of each hierarchy, or ``None`` without usable cgroups.

    Probed once per process; stale groups of dead processes are removed on the way.
    """
    global _parents, _probed
    if os.environ.get(SWITCH, "").lower() == "off":
        return None
    with _lock:
        if not _probed:
            found = _discover()
            _parents = found or None
            _probed = True
            if _parents is not None:
                _sweep(_parents)
        return _parents


def why_unavailable() -> str:
    """Why :func:`parents` returned ``None`` (empty when cgroups are usable)."""
    if os.environ.get(SWITCH, "").lower() == "off":
        return f"disabled by {SWITCH}=off"
    parents()
    return _why_unavailable


def cpu_quota_problem() -> str | None:
    """Why a CPU quota (``Policy.cpu_quota``) cannot be enforced here; ``None`` when it can."""
    found = parents()
    if found is None:
        return f"it needs cgroups ({why_unavailable()})"
    if set(found) == {UNIFIED}:
        return cgroup2.cpu_problem(found[UNIFIED])
    if _cpu_dir(found) is None:
        return "no cgroup v1 'cpu' hierarchy (cpu.cfs_quota_us) is mounted for this process"
    return None


def _cpu_dir(dirs: dict[str, Path]) -> Path | None:
    """The group of ``dirs`` in the cgroup v1 hierarchy holding the ``cpu`` controller."""
    return next((d for d in dirs.values() if (d / "cpu.cfs_quota_us").exists()), None)


#: Most seconds one sweep spends; what it could not remove by then waits for the next one.
SWEEP_BUDGET = 2.0


_sweeper: threading.Thread | None = None


def _sweep(found: dict[str, Path]) -> None:
    """Remove, in the background, the groups of processes that are gone (and everything below
    them). Never waits for a busy group: it is left to the next process's sweep."""
    global _sweeper
    _sweeper = threading.Thread(
        target=_sweep_now, args=(found, SWEEP_BUDGET), name="cleanroom-cgroup-sweep", daemon=True
    )
    _sweeper.start()


def join_sweep(deadline: float = 30.0) -> bool:
    """Wait for this process's sweep of leftover groups; False if it still runs."""
    if _sweeper is not None:
        _sweeper.join(deadline)
        return not _sweeper.is_alive()
    return True


def _sweep_now(found: dict[str, Path], budget: float) -> list[str]:
    """Remove the leftover groups of dead owners until ``budget`` seconds have passed; the names
    of those left in place."""
    end = time.monotonic() + budget
    names: set[str] = set()
    for parent in found.values():
        try:
            names.update(entry.name for entry in os.scandir(parent) if entry.is_dir())
        except OSError:
            continue
    left: list[str] = []
    for name in sorted(names):
        owner = Owner.of_group(name)
        if owner is not None and owner.is_alive():
            continue  # its owner is alive, or in another pid namespace (see Owner)
        group = RunCgroup({c: p / name for c, p in found.items() if (p / name).exists()})
        if time.monotonic() > end or not group.remove(patient=False):
            left.append(name)
    return left


@dataclass(frozen=True)
class Usage:
    """What a group measured: peak memory (bytes), CPU time (seconds), limits that were hit."""

    peak_memory: int | None
    cpu_time: float | None
    oom_kills: int
    pids_max_hits: int


class RunCgroup:
    """The groups of one command, one directory per hierarchy."""

    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs
        #: The cgroup v2 group holding the limits on a host without cgroup v1 controllers.
        v1 = "memory" in dirs or "pids" in dirs
        self.unified: Path | None = None if v1 else dirs.get(UNIFIED)
        # The directories as text, for the files read and written for every command.
        self._top = {hierarchy: str(d) for hierarchy, d in dirs.items()}
        self._unified = None if self.unified is None else str(self.unified)
        # Cumulative counters of a reused group, as they were when this command started.
        self._base_oom_kills = 0
        self._base_pids_max_hits = 0
        self._exposed = False
        #: The CPU quota of the current command (CPUs), which then joins the cpu hierarchy.
        self.cpu_quota: float | None = None
        # The limits last written (a reused group keeps them: only what differs is written
        # again; the command cannot change them, they are above its own group).
        self._limits: tuple[int | None, int | None, float | None] | None = None
        self._cpu: Path | bool | None = False  # False: not looked for yet
        self._joins: dict[tuple[bool, bool], list[str]] = {}
        # Whether the counters were reset and their bases read with no command run since.
        self._counters_fresh = False
        # Descriptors of the group's own files, kept open while it lives: they are read and
        # written for every command, and opening a cgroup file costs more than reading it.
        self._files: dict[tuple[str, int], int] = {}
        self._files_lock = threading.Lock()
        # A pidfd of the task that leaves the released group last (see release()), or -1.
        self._exiting = -1
        self._settled = False  # only the task of ``_exiting`` and what it waits for are left

    @classmethod
    def create(
        cls, *, memory_limit: int | None, max_processes: int | None, cpu_quota: float | None = None
    ) -> RunCgroup | None:
        """Groups with the limits set and the counters reset, or ``None`` without cgroups.

        Groups of finished commands are reused when they are empty and hold (almost) no
        memory: a task's first move into a fresh group costs several milliseconds (the kernel
        builds a new css_set), a move into a known one much less.
        """
        found = parents()
        if found is None:
            return None
        group = _pool.take()
        if group is not None:
            try:
                group.configure(memory_limit, max_processes, cpu_quota)
                return group
            except OSError:
                group.remove()
        owner = _my_group_prefix()
        from ._reaper import ensure_started

        ensure_started(owner, found)  # kills what is left here if this process is killed
        # A random part: the module may be imported afresh in one process (pytester does that).
        name = f"{owner}{next(_counter)}.{secrets.token_hex(4)}"
        group = cls({c: p / name for c, p in found.items()})
        try:
            group.make_dirs()
            group.configure(memory_limit, max_processes, cpu_quota)
        except BaseException:
            group.remove()
            raise
        return group

    def make_dirs(self) -> None:
        """Create the group and the command's own group below it, in every hierarchy."""
        for hierarchy, d in self.dirs.items():
            d.mkdir()
            if d == self.unified:
                cgroup2.enable(d)  # the command's own group measures it: memory.peak, cpu.stat
            (d / LEAF).mkdir()
            if "cpuset" in hierarchy.split(","):
                _inherit_cpuset(d)
                _inherit_cpuset(d / LEAF)

    def expose(self) -> None:
        """Note that the command may mount cgroupfs (nested user namespaces): it may change its
        own group's knobs, so a later command gets a new one."""
        self._exposed = True

    def _fresh_leaves(self) -> bool:
        """Make each command cgroup ready for the next command: the groups made below it removed
        and, if the last command could change its knobs or on cgroup v2 (whose counters cannot
        be reset), a new one (a task's first move into a new group waits for an RCU grace period:
        reused ones are kept when they can be). False if one cannot be removed yet."""
        for d in self.dirs.values():
            leaf = f"{d}/{LEAF}"
            if self._links(leaf) == 2:
                continue  # nothing below it (the usual case)
            for below in reversed(_subtree(Path(leaf))[1:]):
                with contextlib.suppress(FileNotFoundError):
                    try:
                        below.rmdir()
                    except OSError:
                        return False
        # cgroup v2 cannot reset memory.peak or cpu.stat: each command measures in a new leaf.
        if not self._exposed and self.unified is None:
            return True
        self._exposed = False
        for hierarchy, d in self.dirs.items():
            self._close_files(under=f"{d}/{LEAF}")
            if not _remove_tree(d / LEAF, retries=0):
                return False
            try:
                (d / LEAF).mkdir()
                if "cpuset" in hierarchy.split(","):
                    _inherit_cpuset(d / LEAF)
            except OSError:
                return False
        return True

    def configure(
        self, memory_limit: int | None, max_processes: int | None, cpu_quota: float | None = None
    ) -> None:
        """Set the limits and reset the counters for the next command."""
        self.cpu_quota = cpu_quota
        limits = (memory_limit, max_processes, cpu_quota)
        same, self._limits = self._limits == limits, None  # unknown until all are written
        # Nothing ran in the group since its bases were read (a launcher made ahead waits in
        # it, and waiting neither forks nor allocates): they stand.
        fresh, self._counters_fresh = same and self._counters_fresh, False
        if self.unified is not None:
            if not same:
                cgroup2.configure(
                    self.unified, memory_limit, max_processes, cpu_quota, CPU_PERIOD_US
                )
            self._limits = limits
            if not fresh:
                unified = str(self.unified)
                self._base_oom_kills = self._counter(f"{unified}/memory.events", "oom_kill")
                self._base_pids_max_hits = self._raw_counter(unified, "pids.events", "max")
            self._counters_fresh = True
            return
        if not same:
            self._configure_v1_limits(memory_limit, max_processes, cpu_quota)
        self._limits = limits
        # Reset even when fresh: a launcher made ahead joined the group since.
        memory = self._top["memory"]
        self._set(f"{self._top['cpuacct']}/cpuacct.usage", 0)
        self._set(f"{memory}/memory.max_usage_in_bytes", 0)
        if not fresh:
            self._base_oom_kills = self._raw_counter(memory, "memory.oom_control", "oom_kill")
            self._base_pids_max_hits = self._raw_counter(self._top["pids"], "pids.events", "max")
        self._counters_fresh = True

    def _configure_v1_limits(
        self, memory_limit: int | None, max_processes: int | None, cpu_quota: float | None
    ) -> None:
        memory = self.dirs["memory"]
        memsw = memory / "memory.memsw.limit_in_bytes"
        has_memsw = memsw.exists()
        if has_memsw:
            _write(memsw, -1)  # memsw may never be below the memory limit: lift it first
        _write(memory / "memory.limit_in_bytes", memory_limit if memory_limit is not None else -1)
        if has_memsw and memory_limit is not None:
            _write(memsw, memory_limit)
        _write(self.dirs["pids"] / "pids.max", max_processes if max_processes else "max")
        self._configure_cpu(cpu_quota)

    def _cpu_dir(self) -> Path | None:
        """:func:`_cpu_dir` of this group's directories (they never change)."""
        if self._cpu is False:
            self._cpu = _cpu_dir(self.dirs)
        return self._cpu if isinstance(self._cpu, Path) else None

    def _configure_cpu(self, cpu_quota: float | None) -> None:
        """``cpu.cfs_quota_us`` of the group: ``cpu_quota`` periods' worth, or none (-1)."""
        cpu = self._cpu_dir()
        if cpu is None:
            if cpu_quota is not None:
                raise OSError(errno.ENOENT, "no cgroup v1 'cpu' hierarchy for a CPU quota")
            return
        _write(cpu / "cpu.cfs_quota_us", -1)  # a new period may not be shorter than the quota
        _write(cpu / "cpu.cfs_period_us", CPU_PERIOD_US)
        if cpu_quota is not None:
            _write(cpu / "cpu.cfs_quota_us", max(1000, round(cpu_quota * CPU_PERIOD_US)))

    def _raw_counter(self, top: str, name: str, key: str) -> int:
        """``key`` of the file ``name`` summed over the group ``top`` (one of :attr:`dirs`) and
        the groups below it (cgroup v1 counts an OOM kill in the victim's own group, not in the
        one whose limit was hit)."""
        own = (top, f"{top}/{LEAF}")  # read through kept descriptors, the others afresh
        return sum(
            (self._counter if group in own else cgroup2.counter)(f"{group}/{name}", key)
            for group in self._tree(top)
        )

    def _tree(self, top: str) -> list[str]:
        """:func:`_subtree_of` of one of :attr:`dirs`: its link counts, read through kept
        descriptors, tell at once when the command made no group below its own. (A removed
        directory keeps counting 2 through its descriptor: the leaf is made anew only by
        :meth:`_fresh_leaves`, which closes its descriptors first.)"""
        leaf = f"{top}/{LEAF}"
        if self._links(top) == 3 and self._links(leaf) == 2:
            return [top, leaf]
        return _subtree_of(top)

    def _links(self, directory: str) -> int:
        """The link count of the group directory ``directory`` (2 + its subdirectories), or
        -1 if it cannot be read."""
        try:
            return self._through(directory, os.O_RDONLY | os.O_DIRECTORY, _link_count)
        except OSError:
            return -1

    # -- the group's own files, through descriptors kept open --------------------------------

    def _through(self, path: str, flags: int, use: Callable[[int], _T]) -> _T:
        """``use(descriptor)`` of the group's file ``path`` (a file of one of :attr:`dirs` or
        of their :data:`LEAF`: groups below the command's own come and go, they are read the
        plain way), opened once; a descriptor that fails is opened again, once. Not for
        ``cgroup.procs`` (see :meth:`pids`)."""
        key = (path, flags)
        for attempt in range(2):
            fd = self._files.get(key)
            if fd is None:
                fd = os.open(path, flags | os.O_CLOEXEC)
                with self._files_lock:
                    kept = self._files.setdefault(key, fd)
                if kept != fd:
                    os.close(fd)
                    fd = kept
            try:
                return use(fd)
            except OSError:
                with self._files_lock:
                    if self._files.get(key) == fd:
                        del self._files[key]
                        os.close(fd)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _read(self, path: str) -> str:
        """The text of the group's file ``path`` (see :meth:`_through`)."""
        return self._through(path, os.O_RDONLY, _read_whole)

    def _set(self, path: str, value: object) -> None:
        """Write ``value`` to the group's file ``path`` (see :meth:`_through`)."""
        data = str(value).encode()
        self._through(path, os.O_WRONLY, lambda fd: os.pwrite(fd, data, 0))

    def _counter(self, path: str, key: str) -> int:
        """:func:`._v2.counter` of the group's file ``path``."""
        try:
            return cgroup2.flat_key(self._read(path), key)
        except OSError:
            return 0

    def _number(self, path: str) -> int | None:
        """:func:`._v2.number` of the group's file ``path``."""
        try:
            return int(self._read(path))
        except (OSError, ValueError):
            return None

    def _close_files(self, under: str = "") -> None:
        """Close the kept descriptors (of the directory ``under`` and its files only)."""
        with self._files_lock:
            gone = [
                k for k in self._files if not under or k[0] == under or k[0].startswith(under + "/")
            ]
            fds = [self._files.pop(key) for key in gone]
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- measurements --------------------------------------------------------------------------

    def memory_in_use(self) -> int:
        if self._unified is not None:
            current = self._number(f"{self._unified}/memory.current")
            return -1 if current is None else current
        used = self._number(f"{self._top['memory']}/memory.usage_in_bytes")
        return -1 if used is None else used

    @property
    def procs_files(self) -> list[str]:
        """The command cgroup's ``cgroup.procs`` in every hierarchy: the launcher writes ``0``
        to each."""
        return self.join_files(confine=True)

    def join_files(self, *, confine: bool) -> list[str]:
        """The ``cgroup.procs`` files a launcher joins: those of the limits and measurements,
        plus (``confine``) every other hierarchy's, which only a command that may mount cgroupfs
        (nested user namespaces) needs, and whose joins cost time."""
        key = (confine, self.cpu_quota is not None)
        if key not in self._joins:
            cpu = self._cpu_dir() if self.cpu_quota is not None else None
            self._joins[key] = [
                str(d / LEAF / "cgroup.procs")
                for d in self.dirs.values()
                if confine or d in self._limit_dirs() or d == cpu
            ]
        return list(self._joins[key])

    def _limit_dirs(self) -> list[Path]:
        """The groups holding the limits and measurements: cgroup v1's memory, pids, cpuacct
        (and freezer), or the cgroup v2 group on a host with only cgroup v2."""
        if self.unified is not None:
            return [self.unified]
        return [d for h, d in self.dirs.items() if h in REQUIRED + OPTIONAL]

    def pids(self) -> list[int]:
        """Every task of the command, in its cgroup and any the command made below it."""
        found: list[int] = []
        top = self.dirs.get("pids", self.unified)
        for group in self._tree(str(top)) if top is not None else []:
            try:
                # Opened afresh each time: cgroup v1 serves a descriptor read again from a pid
                # list cached for a second.
                found += [int(x) for x in cgroup2.read(group + "/cgroup.procs").split()]
            except (OSError, ValueError):
                continue
        return found

    def oom_kills(self) -> int:
        """OOM kills in the group since this command started."""
        if self._unified is not None:
            events = f"{self._unified}/memory.events"
            return self._counter(events, "oom_kill") - self._base_oom_kills
        counted = self._raw_counter(self._top["memory"], "memory.oom_control", "oom_kill")
        return counted - self._base_oom_kills

    def pids_max_hits(self) -> int:
        """Forks refused by ``pids.max`` since this command started."""
        # cgroup v2 counts them where the fork failed: the command's groups
        top = self._unified if self._unified is not None else self._top["pids"]
        return self._raw_counter(top, "pids.events", "max") - self._base_pids_max_hits

    def cpu_time(self) -> float | None:
        if self._unified is not None:  # the command's own group is new for every command
            stat = f"{self._unified}/{LEAF}/cpu.stat"
            return cgroup2.counter(stat, "usage_usec") / 1e6 if os.path.exists(stat) else None
        used = self._number(f"{self._top['cpuacct']}/cpuacct.usage")
        return None if used is None else used / 1e9

    def peak_memory(self) -> int | None:
        if self._unified is not None:
            return self._number(f"{self._unified}/{LEAF}/memory.peak")
        return self._number(f"{self._top['memory']}/memory.max_usage_in_bytes")

    def usage(self) -> Usage:
        return Usage(self.peak_memory(), self.cpu_time(), self.oom_kills(), self.pids_max_hits())

    def kill(self, deadline: float = 5.0) -> None:
        """SIGKILL every task in the groups (frozen first, so none can fork meanwhile)."""
        end = time.monotonic() + deadline
        if self.unified is not None and cgroup2.kill(self.unified):
            self.wait_empty(deadline)
            return
        freezer = self.dirs.get("freezer")
        # Tasks already exiting cannot freeze: do not wait long for the whole group.
        frozen = freezer is not None and _freeze(freezer, min(end, time.monotonic() + 0.5))
        try:
            while True:
                pids = self.pids()
                if not pids:
                    return
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                if frozen:
                    return  # the kill takes effect as soon as the group thaws
                if time.monotonic() > end:
                    return
                time.sleep(0.002)
        finally:
            if frozen and freezer is not None:
                _write(freezer / "freezer.state", "THAWED", quiet=True)

    def wait_empty(self, deadline: float = 5.0) -> bool:
        end = time.monotonic() + deadline
        exiting, self._exiting = self._exiting, -1
        settled, self._settled = self._settled, False
        if exiting >= 0:  # its last task: once gone, the group is most likely empty
            try:
                gone = bool(select.select([exiting], [], [], deadline)[0])
            finally:
                os.close(exiting)
            if gone and settled:
                return True  # it waited for the only other one left (see release)
        while self.pids():
            if time.monotonic() > end:
                return False
            time.sleep(0.002)
        return True

    def remove(self, *, patient: bool = True) -> bool:
        """Kill what is left and remove every directory, groups the command made below its own
        included; ``patient`` retries while tasks are exiting. True when all are gone."""
        if self.pids():
            self.kill(deadline=5.0 if patient else 0.5)
            self.wait_empty(deadline=5.0 if patient else 0.5)
        self._close_files()
        gone = True
        for d in self.dirs.values():
            if not _remove_tree(d, retries=199 if patient else 20, on_busy=self.kill):
                gone = False
        return gone

    def release(self, last: int | None = None, *, settled: bool = False) -> None:
        """SIGKILL whatever is left now; in the background, wait for the tasks to be gone, then
        keep the groups for the next command or remove them (a sandbox's init may still be
        tearing its namespaces down after the command's result is known). :func:`flush` waits
        for every pending release. ``last``: the PID of the task that exits last (the
        command's launcher), whose exit is waited for rather than polling the groups.
        ``settled``: the command's init killed and reaped every other process of the command
        before reporting its status, so only the launcher and that init, both exiting on their
        own, can be left: none is looked for now (the background wait kills what outstays),
        and the launcher's exit (it waits for its init) tells the groups are empty."""
        self._counters_fresh = False
        if last is not None:
            with contextlib.suppress(OSError):
                self._exiting = os.pidfd_open(last)
                self._settled = settled
        if not settled:
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        _remover.submit(self)


class _Remover:
    """One daemon thread removing released groups once their last task has exited."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: list[RunCgroup] = []
        self._busy = 0
        self._thread: threading.Thread | None = None

    def submit(self, group: RunCgroup) -> None:
        with self._cond:
            self._pending.append(group)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="cleanroom-cgroup-remover", daemon=True
                )
                self._thread.start()
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                group = self._pending.pop(0)
                self._busy += 1
            try:
                empty = group.wait_empty(deadline=0.5)
                if not empty:
                    group.kill()
                    empty = group.wait_empty()
                if not empty or not _pool.put(group):
                    group.remove()
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def flush(self, deadline: float) -> bool:
        end = time.monotonic() + deadline
        with self._cond:
            while self._pending or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


class _Pool:
    """Empty groups kept for reuse (a few, and only those holding almost no memory)."""

    SIZE = 8
    MAX_LEFTOVER_MEMORY = 4 * 1024 * 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: list[RunCgroup] = []

    def take(self) -> RunCgroup | None:
        with self._lock:
            return self._groups.pop() if self._groups else None

    def put(self, group: RunCgroup) -> bool:
        if not 0 <= group.memory_in_use() <= self.MAX_LEFTOVER_MEMORY:
            return False
        if not group._fresh_leaves():
            return False
        with self._lock:
            if len(self._groups) >= self.SIZE:
                return False
            self._groups.append(group)
            return True

    def drain(self) -> None:
        with self._lock:
            groups, self._groups = self._groups, []
        for group in groups:
            group.remove()


_remover = _Remover()
_pool = _Pool()


def flush(deadline: float = 30.0) -> bool:
    """Wait until every released group is emptied and put away; False if ``deadline`` passed."""
    return _remover.flush(deadline)


def remove_all(deadline: float = 30.0) -> None:
    """Flush, then remove the groups kept for reuse (done at interpreter exit)."""
    flush(deadline)
    _pool.drain()


def _after_fork_in_child() -> None:
    # The parent's kept groups and pending releases are the parent's business.
    global _remover, _pool
    _remover = _Remover()
    _pool = _Pool()


atexit.register(remove_all)
os.register_at_fork(after_in_child=_after_fork_in_child)


def _freeze(freezer: Path, end: float) -> bool:
    state = freezer / "freezer.state"
    if not _write(state, "FROZEN", quiet=True):
        return False
    while time.monotonic() < end:
        try:
            if state.read_text().strip() == "FROZEN":
                return True
        except OSError:
            return False
        time.sleep(0.001)
    _write(state, "THAWED", quiet=True)
    return False


def _subtree(top: Path) -> list[Path]:
    """``top`` and every group below it, parents before children."""
    return [Path(group) for group in _subtree_of(str(top))]


def _subtree_of(top: str) -> list[str]:
    """:func:`_subtree` as strings (read for every command: kept cheap)."""
    found: list[str] = []
    stack = [top]
    while stack:
        group = stack.pop()
        found.append(group)
        try:
            # cgroupfs counts a directory's subdirectories in its links: often none, or only
            # the command's own group.
            links = os.stat(group).st_nlink
            if links == 2:
                continue
            leaf = f"{group}/{LEAF}"
            if links == 3 and os.path.isdir(leaf):
                stack.append(leaf)
                continue
            stack += [e.path for e in os.scandir(group) if e.is_dir(follow_symlinks=False)]
        except OSError:
            continue
    return found


def _remove_tree(top: Path, *, retries: int, on_busy: Callable[..., object] | None = None) -> bool:
    """rmdir ``top`` and every group below it, children first; True when all are gone."""
    for group in reversed(_subtree(top)):
        for attempt in range(retries + 1):
            try:
                group.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or attempt == retries:
                    return False
                if on_busy is not None and attempt % 20 == 19:
                    on_busy(deadline=0.5)
                time.sleep(0.005)
    return not top.exists()


def _link_count(fd: int) -> int:
    return os.fstat(fd).st_nlink


#: How much of a cgroup file one read asks for.
_READ_SIZE = 1 << 16


def _read_whole(fd: int) -> str:
    """A cgroup file's text from its start (``pread``: a kept descriptor is read again).

    Only for the files a group keeps descriptors of (limits and counters): cgroupfs prints each
    of them in one go and hands all of it to a read that has room, so a shorter read is the
    whole file (not so for a list such as ``cgroup.procs``, served a page at a time)."""
    chunk = os.pread(fd, _READ_SIZE, 0)
    if len(chunk) < _READ_SIZE:
        return chunk.decode()
    chunks = [chunk]
    offset = len(chunk)
    while chunk := os.pread(fd, _READ_SIZE, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode()


def _write(path: Path, value: object, *, quiet: bool = False) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)
        return True
    except OSError:
        if quiet:
            return False
        raise
