"""What the cleanroom plugin adds to Python's and pytest's start-up.

Prints, in one run, the median wall-clock time and the median CPU time (user + system, of the
process and its children) of each command over N runs (fresh processes, the commands taking
turns so that a busy machine slows all of them alike), then the differences the plugin makes.
CPU time is the steadier figure when other work shares the machine. Measured, never asserted.
Goal: the plugin adds under 100 ms to pytest's start.

    .venv/bin/python benchmarks/bench_import.py [--runs 21] [--json]

Two settings: "as installed" loads every plugin of the environment (pytest-postgresql, syrupy,
xdist... as a user has them); "alone" sets PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 and loads only the
cleanroom plugin with ``-p``, which isolates its own cost from its neighbours'.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from process_timing import CHILD_ENV, time_process

PY = sys.executable
PYTEST = [PY, "-m", "pytest", "-p", "no:cacheprovider", "--co"]
ALONE = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
CLEANROOM = ["-p", "pytest_cleanroom.plugin"]
OTHER_SUBPLUGINS = [
    arg
    for name in ("services", "scenario", "attest", "gpack_bundles")
    for arg in ("-p", f"no:cleanroom.{name}.plugin")
]

# label -> (command, extra environment)
CASES: dict[str, tuple[list[str], dict[str, str]]] = {
    "python -c pass": ([PY, "-c", "pass"], {}),
    "python -c 'import pytest'": ([PY, "-c", "import pytest"], {}),
    "python -c 'import pytest_cleanroom.plugin'": (
        [PY, "-c", "import pytest_cleanroom.plugin"],
        {},
    ),
    "python -c 'import ...pytest_plugin.core'": (
        [PY, "-c", "import pytest_cleanroom.pytest_plugin.core"],
        {},
    ),
    "as installed: pytest --co -q -p no:cleanroom": ([*PYTEST, "-q", "-p", "no:cleanroom"], {}),
    "as installed: pytest --co -q": ([*PYTEST, "-q"], {}),
    "as installed: pytest --co -p no:cleanroom (header)": ([*PYTEST, "-p", "no:cleanroom"], {}),
    "as installed: pytest --co (header)": ([*PYTEST], {}),
    "alone: pytest --co -q (no plugin)": ([*PYTEST, "-q"], ALONE),
    "alone: pytest --co -q, cleanroom core only": (
        [*PYTEST, "-q", *CLEANROOM, *OTHER_SUBPLUGINS],
        ALONE,
    ),
    "alone: pytest --co -q, whole cleanroom plugin": ([*PYTEST, "-q", *CLEANROOM], ALONE),
    "alone: pytest --co (no plugin, header)": ([*PYTEST], ALONE),
    "alone: pytest --co, core only (header)": ([*PYTEST, *CLEANROOM, *OTHER_SUBPLUGINS], ALONE),
}

#: The judged figure: what a user who installed the plugin pays on every run with the header.
GOAL_CASE = "as installed, pytest --co (header): plugin added"
GOAL_MS = 100

DIFFERENCES = [
    (
        "import pytest_cleanroom.plugin, over import pytest",
        "python -c 'import pytest_cleanroom.plugin'",
        "python -c 'import pytest'",
    ),
    (
        "as installed, pytest --co -q: plugin added",
        "as installed: pytest --co -q",
        "as installed: pytest --co -q -p no:cleanroom",
    ),
    (
        "as installed, pytest --co (header): plugin added",
        "as installed: pytest --co (header)",
        "as installed: pytest --co -p no:cleanroom (header)",
    ),
    (
        "alone, pytest --co -q: core added",
        "alone: pytest --co -q, cleanroom core only",
        "alone: pytest --co -q (no plugin)",
    ),
    (
        "alone, pytest --co -q: whole plugin added",
        "alone: pytest --co -q, whole cleanroom plugin",
        "alone: pytest --co -q (no plugin)",
    ),
    (
        "alone, pytest --co (header): core added",
        "alone: pytest --co, core only (header)",
        "alone: pytest --co (no plugin, header)",
    ),
]


def time_once(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall ms, CPU ms) of one run of ``cmd``."""
    # pytest exits 5 when it collects nothing: that is the point of an empty directory.
    timing = time_process(cmd, cwd, {**CHILD_ENV, **env}, ok=(0, 5))
    return timing.wall_ms, timing.cpu_ms


def measure(runs: int, progress: bool) -> dict[str, tuple[float, float]]:
    """Median (wall ms, CPU ms) per case."""
    walls: dict[str, list[float]] = {label: [] for label in CASES}
    cpus: dict[str, list[float]] = {label: [] for label in CASES}
    with tempfile.TemporaryDirectory(prefix="bench-import-") as empty:
        for run in range(runs + 1):  # run 0 only warms the file cache
            if progress:
                print(f"round {run}/{runs}", file=sys.stderr, flush=True)
            for label, (cmd, env) in CASES.items():
                wall, cpu = time_once(cmd, env, Path(empty))
                if run:
                    walls[label].append(wall)
                    cpus[label].append(cpu)
    return {
        label: (statistics.median(walls[label]), statistics.median(cpus[label])) for label in CASES
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs per command (median)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()

    medians = measure(args.runs, progress=not args.json)
    added = {
        label: (medians[a][0] - medians[b][0], medians[a][1] - medians[b][1])
        for label, a, b in DIFFERENCES
    }
    if args.json:
        print(
            json.dumps(
                {
                    "runs": args.runs,
                    "cpus": os.cpu_count(),
                    "median_ms": {k: {"wall": w, "cpu": c} for k, (w, c) in medians.items()},
                    "added_ms": {k: {"wall": w, "cpu": c} for k, (w, c) in added.items()},
                    "goal_ms": GOAL_MS,
                    "goal_met": max(added[GOAL_CASE]) < GOAL_MS,
                },
                indent=2,
            )
        )
        return
    width = max(len(label) for label in [*medians, *added])
    load = os.getloadavg()[0]
    print(
        f"\nmedian of {args.runs} runs, {os.cpu_count()} CPUs, load {load:.1f}, "
        f"Python {sys.version.split()[0]}"
    )
    print(f"{'command':<{width}}  {'wall ms':>8}  {'CPU ms':>8}")
    print(f"{'-' * width}  {'-' * 8}  {'-' * 8}")
    for label, (wall, cpu) in medians.items():
        print(f"{label:<{width}}  {wall:8.1f}  {cpu:8.1f}")
    print(f"{'-' * width}  {'-' * 8}  {'-' * 8}")
    for label, (wall, cpu) in added.items():
        print(f"{label:<{width}}  {wall:+8.1f}  {cpu:+8.1f}")
    wall, cpu = added[GOAL_CASE]
    verdict = "met" if max(wall, cpu) < GOAL_MS else "MISSED"
    print(f"\ngoal: the plugin adds < {GOAL_MS} ms to pytest's start ({GOAL_CASE}): {verdict}")


if __name__ == "__main__":
    main()
