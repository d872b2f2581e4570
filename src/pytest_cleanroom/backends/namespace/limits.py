"""Resource limits of the namespace backends: which mechanism enforces each one, and the rlimits.

With cgroups (see :mod:`pytest_cleanroom.cgroups`) memory and the number of tasks are limited for
the whole process tree; without them the number of tasks is ``RLIMIT_NPROC`` set inside the
sandbox's user namespace (where it counts the sandbox's processes only), and memory and CPU time
can only be held per process (``RLIMIT_DATA``, ``RLIMIT_CPU``): :data:`TREE_FIELDS`, which a
policy may use that way only when the caller opted in (``Policy.per_process_limits``).
``RLIMIT_DATA`` rather than ``RLIMIT_AS``: it counts the writable private memory a process may
use, not the address space it reserves (a JVM reserves its heap up front and fails under
``RLIMIT_AS``). File size, open files and per-process CPU time are always rlimits; the CPU time
of the whole tree is also watched through the cgroup where there is one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...policy import Policy

_BLOCK = 512  # POSIX ``ulimit -f`` unit
#: Policy fields that hold for the whole process tree only with a cgroup (or a container).
TREE_FIELDS = ("memory_limit", "cpu_time_limit")


def per_process_fields(policy: Policy) -> list[str]:
    """The :data:`TREE_FIELDS` ``policy`` sets: without a cgroup they hold per process only."""
    return [name for name in TREE_FIELDS if getattr(policy, name) is not None]


@dataclass(frozen=True)
class Rlimits:
    """Per-process limits (``None``: unlimited). CPU in whole seconds, sizes in bytes."""

    file_size: int | None = None
    open_files: int | None = None
    cpu_seconds: int | None = None
    data_size: int | None = None
    processes: int | None = None

    @property
    def empty(self) -> bool:
        return not self.settings()

    def settings(self) -> list[tuple[str, int, int]]:
        """Each limit that is set as ``(name, soft, hard)``, in bytes, seconds or a count: the one
        table every launcher renders (names as util-linux ``prlimit`` and the set-up step use)."""
        values = {
            "fsize": self.file_size,
            "nofile": self.open_files,
            # Soft below hard: SIGXCPU first (reported as cpu_time), SIGKILL a second later.
            "cpu": self.cpu_seconds,
            "data": self.data_size,
            "nproc": self.processes,
        }
        return [
            (name, value, value + 1 if name == "cpu" else value)
            for name, value in values.items()
            if value is not None
        ]

    def ulimit_commands(self) -> list[str]:
        """POSIX-shell ``ulimit`` commands for :meth:`settings` (dash and bash agree on these
        flags and units); processes are left out (``ulimit -u`` is not POSIX)."""
        cmds: list[str] = []
        for name, soft, hard in self.settings():
            if name == "fsize":  # rounded up: never below what was asked
                cmds.append(f"ulimit -f {max(1, -(-soft // _BLOCK))}")
            elif name == "nofile":
                cmds.append(f"ulimit -n {soft}")
            elif name == "cpu":  # soft first: a hard limit below the current soft one is invalid
                cmds += [f"ulimit -S -t {soft}", f"ulimit -H -t {hard}"]
            elif name == "data":
                cmds.append(f"ulimit -d {max(1, soft // 1024)}")
        return cmds

    def prlimit_args(self) -> list[str]:
        """Options of util-linux ``prlimit`` setting the same limits (plus processes)."""
        return [
            f"--{name}={soft}" if soft == hard else f"--{name}={soft}:{hard}"
            for name, soft, hard in self.settings()
        ]


def rlimits_for(policy: Policy, *, cgroups: bool) -> Rlimits:
    """The rlimits of a command under ``policy``; memory and processes only without cgroups."""
    cpu = math.ceil(policy.cpu_time_limit) if policy.cpu_time_limit is not None else None
    return Rlimits(
        file_size=policy.max_file_size,
        open_files=policy.max_open_files,
        cpu_seconds=cpu,
        data_size=None if cgroups else policy.memory_limit,
        processes=None if cgroups else policy.max_processes,
    )


def exit_code_of(returncode: int) -> int:
    """Shell convention: a process killed by signal N exits with ``128 + N``."""
    return 128 - returncode if returncode < 0 else returncode
