"""What a user sees: a whole pytest suite whose tests each run three commands, sandboxed or not.

Writes a suite of ``--tests`` tests (default 200) into a scratch directory and runs it as whole
``pytest`` processes (start-up, collection, fixtures, the plugin's reporting hooks and summary
included), alternating the rows round-robin ``--rounds`` times so that machine noise hits every
row alike (medians; measured, never asserted):

1. each test runs ``true`` three times with ``subprocess.run`` in its ``tmp_path``, the plugin
   not loaded;
2. the same with the plugin loaded (what a suite that has the plugin installed pays anyway);
3. each test runs ``true`` three times through the ``cleanroom`` fixture under
   ``--cleanroom-policy=locked`` (``--cleanroom-backend``, default ``bwrap``);
4. each test takes the ``cleanroom`` fixture and runs nothing, beside tests that take
   ``tmp_path`` and run nothing: what the fixture itself costs per test (set-up, teardown);
5. with ``--compare-src DIR``, rows 3 and 4 again with another tree's ``src`` first on
   ``PYTHONPATH`` (the same suites before and after a change, in one run).

Other pytest plugins installed in the environment are not loaded
(``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), so that only the cleanroom plugin differs between the rows.
CPU is user + system time of pytest and every process it waited for (the sandboxes included),
which machine load barely moves.

Run: ``.venv/bin/python benchmarks/bench_suite.py [--tests 200] [--rounds 3]
[--backend bwrap] [--compare-src /path/to/old/src] [--json]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from process_timing import CHILD_ENV, ProcessTime, time_process

COMMANDS_PER_TEST = 3

NATIVE_SUITE = """\
import subprocess

import pytest


@pytest.mark.parametrize("index", range({tests}))
def test_commands(tmp_path, index):
    for _ in range({commands}):
        subprocess.run(["true"], cwd=tmp_path, capture_output=True, check=True)
"""

CLEANROOM_SUITE = """\
import pytest


@pytest.mark.parametrize("index", range({tests}))
def test_commands(cleanroom, index):
    for _ in range({commands}):
        cleanroom.run(["true"]).assert_success()
"""

#: ``{suite directory: (test file text, commands per test)}``
SUITES = {
    "native": (NATIVE_SUITE, COMMANDS_PER_TEST),
    "cleanroom": (CLEANROOM_SUITE, COMMANDS_PER_TEST),
    "native-empty": (NATIVE_SUITE, 0),
    "cleanroom-empty": (CLEANROOM_SUITE, 0),
}


def _write_suites(scratch: Path, tests: int) -> None:
    for name, (text, commands) in SUITES.items():
        suite = scratch / name
        suite.mkdir()
        (suite / "test_suite.py").write_text(text.format(tests=tests, commands=commands))


def _rows(
    scratch: Path, backend: str, compare: Path | None
) -> dict[str, tuple[list[str], Path, dict[str, str]]]:
    """``{row: (argv, directory, environment)}``."""
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    plugin = [*pytest, "-p", "cleanroom"]
    sandboxed = [*plugin, "--cleanroom-policy=locked", f"--cleanroom-backend={backend}"]
    env = {**CHILD_ENV, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env.pop("PYTHONPATH", None)
    label = f"locked ({backend})"
    rows = {
        "subprocess.run x3, plugin not loaded": (pytest, scratch / "native", env),
        "subprocess.run x3, plugin loaded": (plugin, scratch / "native", env),
        f"cleanroom.run x3, {label}": (sandboxed, scratch / "cleanroom", env),
        "tmp_path, no command, plugin loaded": (plugin, scratch / "native-empty", env),
        f"cleanroom fixture, no command, {label}": (sandboxed, scratch / "cleanroom-empty", env),
    }
    if compare is not None:
        old = {**env, "PYTHONPATH": str(compare)}
        rows[f"cleanroom.run x3, {label}, {compare}"] = (sandboxed, scratch / "cleanroom", old)
        rows[f"cleanroom fixture, no command, {label}, {compare}"] = (
            sandboxed,
            scratch / "cleanroom-empty",
            old,
        )
    return rows


def _passed(run: ProcessTime, tests: int) -> None:
    if f"{tests} passed" not in run.stdout:
        raise SystemExit(f"bench_suite: the suite did not pass:\n{run.stdout[-3000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tests", type=int, default=200, help="tests in the suite (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each row (default 3)")
    parser.add_argument("--backend", default="bwrap", help="--cleanroom-backend (default bwrap)")
    parser.add_argument(
        "--compare-src", type=Path, help="another tree's src directory, run as a further row"
    )
    parser.add_argument("--json", action="store_true", help="print the medians as JSON")
    args = parser.parse_args()
    if args.tests < 1 or args.rounds < 1:
        parser.error("--tests and --rounds must be at least 1")
    compare = args.compare_src.resolve() if args.compare_src else None
    if compare is not None and not (compare / "pytest_cleanroom").is_dir():
        parser.error(f"--compare-src {compare}: no pytest_cleanroom package there")

    scratch = Path(tempfile.mkdtemp(prefix="bench-suite-"))
    loads = [os.getloadavg()[0]]
    try:
        _write_suites(scratch, args.tests)
        rows = _rows(scratch, args.backend, compare)
        runs: dict[str, list[ProcessTime]] = {name: [] for name in rows}
        for round_ in range(args.rounds):
            for name, (argv, cwd, env) in rows.items():
                run = time_process(argv, cwd, env)
                _passed(run, args.tests)
                runs[name].append(run)
            loads.append(os.getloadavg()[0])
            if not args.json:
                print(f"  ... {round_ + 1}/{args.rounds} rounds", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    wall = {name: statistics.median(r.wall_ms for r in done) / 1000 for name, done in runs.items()}
    cpu = {name: statistics.median(r.cpu_ms for r in done) / 1000 for name, done in runs.items()}
    load = statistics.mean(loads)
    if args.json:
        report = {"tests": args.tests, "commands_per_test": COMMANDS_PER_TEST,
                  "rounds": args.rounds, "load_average_1m": load, "median_wall_s": wall,
                  "median_cpu_s": cpu}  # fmt: skip
        print(json.dumps(report, indent=2))
        return 0
    reference = wall["subprocess.run x3, plugin loaded"]
    print(
        f"\n{args.tests} tests, whole pytest runs, median of {args.rounds}; 1-minute load "
        f"average {load:.1f}; the ratio is to the suite running subprocess.run x3\n"
    )
    width = max(map(len, rows))
    print(f"{'':{width}s} {'wall s':>8s} {'cpu s':>8s} {'ratio':>7s}")
    for name in rows:
        ratio = f"{wall[name] / reference:.2f}x"
        print(f"{name:{width}s} {wall[name]:8.2f} {cpu[name]:8.2f} {ratio:>7s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
