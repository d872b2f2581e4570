"""A cgroup per task command, where cgroups work, so that killing a task kills every process it
started: those that left its process group (``setsid``, double forks) included.

The groups are the engine's (:class:`pytest_cleanroom.cgroups.RunCgroup`, without limits): the
same hierarchies, reuse of finished groups, a reaper that kills what they hold if the runner is
killed outright, and the sweep of groups a dead runner left. Without usable cgroups (not root,
``CLEANROOM_CGROUPS=off``, no delegated cgroup v2 group) a task is killed through its process
group only, and :func:`create` says why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_cleanroom.cgroups import RunCgroup


def create() -> tuple[RunCgroup | None, str]:
    """A fresh group for one command, or ``None`` and why there is none."""
    from pytest_cleanroom import cgroups

    try:
        group = cgroups.RunCgroup.create(memory_limit=None, max_processes=None)
    except OSError as exc:
        return None, f"cannot create a cgroup: {exc}"
    if group is None:
        return None, cgroups.why_unavailable() or "cgroups are not usable here"
    return group, ""


def join(group: RunCgroup, pid: int) -> str:
    """Move ``pid`` (a command's shell, before it starts anything) into ``group``; empty on
    success, else why it could not (the group is then released).

    Only the hierarchies through which the group's processes are found and killed are joined:
    ``pids`` and ``freezer`` (cgroup v1) or the unified one (v2). A task has no limits to keep
    or usage to measure, and each first move into a group of a hierarchy costs milliseconds.
    """
    from pytest_cleanroom.cgroups import LEAF

    if group.unified is not None:
        tops = [group.unified]
    else:
        tops = [group.dirs[name] for name in ("pids", "freezer") if name in group.dirs]
    try:
        for top in tops:
            with open(top / LEAF / "cgroup.procs", "w") as handle:
                handle.write(str(pid))
    except OSError as exc:
        group.release()
        return f"cannot move the command into its cgroup: {exc}"
    return ""
