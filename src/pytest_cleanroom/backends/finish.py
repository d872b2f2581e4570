"""The one way every backend turns what it saw of a command into a :class:`RunResult`.

Which limit ended a command is decided here for every backend alike, so that a result reads the
same whether the command ran in namespaces, a container or elsewhere.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from ..policy import Policy
from ..result import RunResult
from .base import ENFORCED_BY_RLIMIT, LIMIT_CPU_TIME, LIMIT_FILE_SIZE, CommandSpec, make_result

#: The private /tmp and /dev/shm were filled (``max_disk``).
LIMIT_DISK = "disk"
#: Added to stderr of a command that :meth:`Backend.cancel` or :meth:`Backend.close` killed.
CLOSED_NOTE = b"\ncleanroom: command killed: the cleanroom was closed or cancelled while it ran\n"


def classify_limit(
    spec: CommandSpec,
    exit_code: int,
    started_at: float,
    *,
    observed: str | None = None,
    cpu_time: float | None = None,
    tree_cpu_time: bool = False,
    disk_full: bool = False,
) -> str | None:
    """Which limit of ``spec.policy`` ended the command, ``None`` if none did.

    ``observed`` is what the backend saw itself while the command ran (it wins); otherwise the
    exit code (a limit's signal), the whole tree's CPU time (when ``tree_cpu_time``: measured
    for the tree, as cgroups and containers do), a file in the workspace at ``max_file_size``,
    and a full scratch ``/tmp`` (``disk_full``) are asked in that order.
    """
    policy = spec.policy
    if observed is not None:
        return observed
    limit = limit_of_exit_code(exit_code, policy)
    if limit is not None:
        return limit
    cpu_limit = policy.cpu_time_limit
    if tree_cpu_time and cpu_limit is not None and cpu_time is not None and cpu_time > cpu_limit:
        return LIMIT_CPU_TIME
    if exit_code == 0:
        return None
    if policy.max_file_size is not None and file_size_hit(
        spec.workspace, policy.max_file_size, started_at - 1
    ):
        return LIMIT_FILE_SIZE
    return LIMIT_DISK if disk_full else None


def finish_result(
    spec: CommandSpec,
    *,
    backend: str,
    exit_code: int,
    stdout: bytes,
    stderr: bytes,
    duration: float,
    started_at: float,
    limits_enforcement: str,
    observed_limit: str | None = None,
    timed_out: bool = False,
    cancelled: bool = False,
    disk_full: bool = False,
    peak_memory: int | None = None,
    cpu_time: float | None = None,
) -> RunResult:
    """The result of a command that ran: its limit classified, a note if it was cancelled."""
    limit = classify_limit(
        spec,
        exit_code,
        started_at,
        observed=observed_limit,
        cpu_time=cpu_time,
        tree_cpu_time=limits_enforcement != ENFORCED_BY_RLIMIT,
        disk_full=disk_full,
    )
    return make_result(
        spec,
        backend=backend,
        exit_code=exit_code,
        stdout=stdout,
        stderr=stderr + (CLOSED_NOTE if cancelled else b""),
        duration=duration,
        started_at=started_at,
        timed_out=timed_out,
        limit_exceeded=limit,
        peak_memory=peak_memory,
        cpu_time=cpu_time,
        limits_enforcement=limits_enforcement,
    )


def file_size_hit(workspace: Path, limit: int, since: float) -> bool:
    """Whether a file in ``workspace`` modified since ``since`` reached ``limit`` bytes.

    Programs that ignore SIGXFSZ (Python does) get EFBIG instead of dying; a file stopped at
    the limit is then the evidence that the file-size limit ended the command.
    """
    stack = [str(workspace)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    if st.st_size >= limit and st.st_mtime >= since:
                        return True
            except OSError:
                continue
    return False


def limit_of_exit_code(exit_code: int, policy: Policy) -> str | None:
    """The limit a signal-death points to: SIGXFSZ is the file size, SIGXCPU the CPU time."""
    if policy.max_file_size is not None and exit_code == 128 + signal.SIGXFSZ:
        return LIMIT_FILE_SIZE
    if policy.cpu_time_limit is not None and exit_code == 128 + signal.SIGXCPU:
        return LIMIT_CPU_TIME
    return None
