"""Finding what a sandboxed command may have left on the machine: processes and cgroups."""

from __future__ import annotations

import os
from pathlib import Path

from pytest_cleanroom import cgroups

MARKER_VARIABLE = "CLEANROOM_PROBE_MARKER"


def processes_with_marker(marker: str) -> list[int]:
    """PIDs of live processes whose environment holds ``CLEANROOM_PROBE_MARKER=marker``.

    Every process of a command started with that variable inherits it, whatever it execs.
    """
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    found: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ.split(b"\0"):
            found.append(int(entry))
    return found


def cgroups_of_process(pid: int) -> list[Path]:
    """Per-command cgroup directories created by the engine running in process ``pid``."""
    found = cgroups.parents() or {}
    return [
        entry
        for parent in found.values()
        if parent.is_dir()
        for entry in parent.iterdir()
        if entry.is_dir() and entry.name.startswith(f"{pid}-")
    ]


def _is_waiting_launcher(pid: str, *, below: int = 2) -> bool:
    """A launcher made ready for a later command (see backends/namespace/prepared.py), with
    up to ``below`` generations of waiting processes under it: the init of the warm sandbox
    one entered ahead of its command, and the command's process forked ahead by that init."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if len(cmdline) > 2 and cmdline[1] == b"--serve":  # forked by the launcher server
        # Once given a command it goes on in the same process: then it has children (one
        # that entered a sandbox ahead has its init, whose one child, the command's process,
        # has none until it runs the command).
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return False
        if not os.path.basename(cmdline[0]).startswith(b"nsinit-"):
            return False
        if not children:
            return True
        return (
            below > 0 and len(children) == 1 and _is_waiting_launcher(children[0], below=below - 1)
        )
    return cmdline[:2] == [b"/bin/sh", b"-c"] and b". /dev/fd/" in cmdline[2]


def busy_cgroups_of_process(pid: int) -> list[Path]:
    """Those of :func:`cgroups_of_process` holding a task of some command. Empty groups may be
    kept for reuse, and one per open cleanroom holds a launcher waiting for the next command,
    while the engine's process lives; it removes them when it exits."""
    busy = []
    for group in cgroups_of_process(pid):
        tasks = []
        for below, _, _ in os.walk(group):  # the command's own group, and any it made below
            try:
                tasks += (Path(below) / "cgroup.procs").read_text().split()
            except OSError:
                continue
        if any(not _is_waiting_launcher(task) for task in tasks):
            busy.append(group)
    return busy
