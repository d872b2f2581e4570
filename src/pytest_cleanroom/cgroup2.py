"""Per-command cgroups on a cgroup v2 (unified) host: where they live and the v2 files they use.

:mod:`~pytest_cleanroom.cgroups` keeps one model of a command's groups for both versions; this
module holds what differs on a host whose only hierarchy is cgroup v2 (current Debian, Ubuntu,
Fedora, GitHub-hosted runners). As root, the engine's groups live in a ``pytest-cleanroom``
group at the root of the hierarchy: the root cgroup is the one group that may hold processes
and still hand controllers to its children (cgroup v2's no-internal-process rule), so neither the
engine's own group nor anyone else's processes are moved. ``memory`` and ``pids`` are enabled
through ``cgroup.subtree_control`` on the way down; each command's group sets ``memory.max``,
``memory.swap.max`` and ``pids.max``, and the command runs in a fresh child of it (the root of
its cgroup namespace), whose ``memory.peak`` and ``cpu.stat`` measure exactly that command.
``cgroup.kill`` ends the whole subtree at once.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

#: Controllers a command's group needs, enabled in ``cgroup.subtree_control`` above it.
CONTROLLERS = ("memory", "pids")


def is_unified_only(mounts: dict[str, tuple[str, str]], unified_key: str) -> bool:
    """True when cgroup v2 is mounted and no v1 hierarchy carries the memory controller."""
    return unified_key in mounts and "memory" not in mounts


def root_parent(mountpoint: str, mount_root: str, group_dir: str) -> tuple[Path | None, str]:
    """``(the engine's parent group, "")`` at the hierarchy's root, or ``(None, why not)``.

    Only the real root cgroup may keep processes while giving its children controllers; a
    cgroup v2 mount whose root is another group (a container's cgroup namespace) is refused
    with the fix rather than moving processes that are not the engine's.
    """
    top = Path(mountpoint)
    if mount_root != "/" or (top / "cgroup.freeze").exists():
        return None, (
            "the cgroup v2 hierarchy visible here is not the host's root (inside a container's "
            "cgroup namespace); give the container a delegated, writable cgroup subtree or run "
            "the engine on the host"
        )
    available = set((top / "cgroup.controllers").read_text().split())
    missing = [c for c in CONTROLLERS if c not in available]
    if missing:
        return None, f"the cgroup v2 controllers {', '.join(missing)} are not available"
    try:
        enable(top)
        parent = top / group_dir
        parent.mkdir(exist_ok=True)
        enable(parent)
    except OSError as exc:
        return None, f"cannot set up the cgroup v2 group {top / group_dir}: {exc}"
    return parent, ""


def enable(group: Path) -> None:
    """Hand :data:`CONTROLLERS` to the children of ``group`` (a no-op when already done)."""
    enabled = set((group / "cgroup.subtree_control").read_text().split())
    wanted = [c for c in CONTROLLERS if c not in enabled]
    if wanted:
        with open(group / "cgroup.subtree_control", "w") as f:
            f.write(" ".join(f"+{c}" for c in wanted))


def configure(
    group: Path,
    memory_limit: int | None,
    max_processes: int | None,
    cpu_quota: float | None = None,
    period_us: int = 100_000,
) -> None:
    """Set a command group's limits (``max`` for none); swap may not extend the memory limit;
    ``cpu.max`` holds ``cpu_quota`` periods' worth of CPU time per period."""
    _write(group / "memory.max", memory_limit if memory_limit is not None else "max")
    swap = group / "memory.swap.max"
    if swap.exists():
        _write(swap, 0 if memory_limit is not None else "max")
    _write(group / "pids.max", max_processes if max_processes else "max")
    if cpu_quota is not None:
        enable_cpu(group.parent)
        _write(group / "cpu.max", f"{max(1000, round(cpu_quota * period_us))} {period_us}")
    elif (group / "cpu.max").exists():
        _write(group / "cpu.max", f"max {period_us}")


#: The controller of CPU quotas: enabled above the engine's groups only when a policy asks for
#: one (the rest of the machine's groups are not touched otherwise).
CPU = "cpu"


def cpu_problem(parent: Path) -> str | None:
    """Why ``cpu.max`` cannot be set below ``parent`` (the engine's group); ``None`` if it can."""
    available = (parent / "cgroup.controllers").read_text().split()
    if CPU in available:
        return None
    top = parent.parent
    if CPU in (top / "cgroup.controllers").read_text().split():
        try:
            enable_cpu(parent)
            return None
        except OSError as exc:
            return f"cannot enable the cgroup v2 cpu controller above {parent}: {exc}"
    return "the cgroup v2 cpu controller is not available on this host"


def enable_cpu(parent: Path) -> None:
    """Hand the cpu controller down to ``parent``'s children (and to ``parent``)."""
    for group in (parent.parent, parent):
        if CPU not in (group / "cgroup.subtree_control").read_text().split():
            with open(group / "cgroup.subtree_control", "w") as f:
                f.write(f"+{CPU}")


def counter(path: Path, key: str) -> int:
    """``key`` in a flat-keyed cgroup file (``memory.events``, ``pids.events``, ``cpu.stat``; v1's
    ``memory.oom_control`` too), 0 when the file or the key is missing."""
    try:
        text = path.read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            with contextlib.suppress(ValueError):
                return int(value)
    return 0


def number(path: Path) -> int | None:
    """An integer file (``memory.peak``, ``memory.current``), or None when unreadable."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def kill(group: Path) -> bool:
    """SIGKILL every task in ``group`` and below it at once; False without ``cgroup.kill``."""
    try:
        with open(group / "cgroup.kill", "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


def _write(path: Path, value: object) -> None:
    with open(path, "w") as f:
        f.write(str(value))
