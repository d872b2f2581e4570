"""Timing of whole child processes, shared by the benchmark scripts.

The scripts run as ``python benchmarks/<name>.py``, so this module is importable beside them.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

#: The environment children get: bytecode is written, as pip does at install (a developer's
#: PYTHONDONTWRITEBYTECODE would make every run recompile every edited module).
CHILD_ENV: dict[str, str] = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


@dataclass(frozen=True)
class ProcessTime:
    """One finished process: wall-clock and CPU (user + system) milliseconds, its stdout."""

    wall_ms: float
    cpu_ms: float
    stdout: str


def time_process(
    cmd: list[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    *,
    ok: Collection[int] = (0,),
) -> ProcessTime:
    """Run ``cmd`` to its end; a return code outside ``ok`` stops the benchmark with its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        cmd,
        cwd=cwd,
        env=dict(CHILD_ENV if env is None else env),
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in ok:
        raise SystemExit(
            f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-2000:]}"
        )
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return ProcessTime(wall * 1000, cpu * 1000, done.stdout)
