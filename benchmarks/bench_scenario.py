"""What a scenario adds per step to the engine's own cost, and what the repeat check costs.

Side by side in one run (medians; measured, never asserted):

1. Per-step overhead of a scenario over direct ``cleanroom.run``: the same N commands (``true``)
   run (a) one by one through ``cleanroom.run`` and (b) as an N-step scenario through
   ``cleanroom.run_scenario``. Sandboxed commands vary by several milliseconds from run to run, so
   the overhead is also measured exactly: the scenario's wall time minus the time spent inside
   ``cleanroom.run`` (the engine's cost), divided by the steps. Also for a concurrent group of 2
   (threads). Goal: under 2 ms per step.
2. The repeat check's cost: commands (``true``, and one that writes 10 files) in workspaces of
   10 and 1,000 files, plain and under the repeat check. The check runs each command a second
   time in a copy of the workspace, so it costs one extra run plus keeping that copy and
   comparing the trees; the table separates the two ("beyond 2 runs"), and shows a test's first
   checked command apart (it copies the whole workspace and builds the replay cleanroom; later
   commands only bring the copy up to date).

Run: ``.venv/bin/python benchmarks/bench_scenario.py [--steps 20] [--repeat 7] [--policy standard]
[--json]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_cleanroom.engine import Cleanroom
from pytest_cleanroom.result import RunResult
from pytest_cleanroom.scenarios import scenario, step
from pytest_cleanroom.scenarios.mirror import Mirror
from pytest_cleanroom.scenarios.repeat import _first_difference
from pytest_cleanroom.scenarios.replay import attach_repeat_checker
from pytest_cleanroom.scenarios.runner import run_scenario
from pytest_cleanroom.scenarios.tree import Tree, changes_since
from pytest_cleanroom.scenarios.treediff import (
    Baseline,
    compare_entries,
    compare_trees,
    copy_tree,
    scratch_parent,
)

WRITE_TEN = "mkdir -p out && for i in 0 1 2 3 4 5 6 7 8 9; do echo built $i > out/$i.txt; done"


def ms(seconds: float) -> float:
    return seconds * 1000.0


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Timed:
    """Wraps ``cleanroom.run`` to record the time spent inside each call (the engine's cost)."""

    def __init__(self, room: Cleanroom) -> None:
        self.room = room
        self.durations: list[float] = []
        inner = room.run

        def run(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.durations.append(time.perf_counter() - start)

        room.run = run  # type: ignore[method-assign]

    @property
    def inside(self) -> float:
        return sum(self.durations)

    def detach(self) -> None:
        del self.room.run  # back to the class's method


class Instant:
    """Stands in for the engine to time the runner alone: every command "ran" in no time."""

    def __init__(self, root: Path) -> None:
        self.workspace = root
        self.result = RunResult(("true",), 0, b"", b"", 0.0, "none", "standard", "-", 0)

    def run(self, cmd: Any, **kwargs: Any) -> RunResult:
        return self.result


def runner_alone(base: Path, steps: int, repeat: int) -> float:
    """Milliseconds per step of the scenario machinery itself (median of ``repeat`` runs)."""
    sc = scenario("alone")
    for i in range(steps):
        sc = sc.step(f"s{i}", ["true"], expect_stdout="^$", expect_files=["."])
    room: Any = Instant(base)
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        run_scenario(room, sc)
        timings.append(ms(time.perf_counter() - start) / steps)
    return median(timings)


def populate(root: Path, files: int) -> None:
    for i in range(files):
        path = root / f"d{i % 20:02d}" / f"f{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((f"line {i}\n" * 50).encode())


def scenario_overhead(base: Path, steps: int, repeat: int, policy: str) -> dict[str, Any]:
    room = Cleanroom(base / "steps", policy=policy)
    room.run("true")  # warm up the backend
    sequential = scenario("bench").with_policy(room.policy)
    for i in range(steps):
        sequential = sequential.step(f"s{i}", ["true"])
    pairs = scenario("pairs").with_policy(room.policy)
    for i in range(steps // 2):
        pairs = pairs.concurrent(step(f"a{i}", ["true"]), step(f"b{i}", ["true"]))

    direct, through, exact, exact_pairs = [], [], [], []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(steps):
            room.run(["true"], policy=room.policy)
        direct.append(ms(time.perf_counter() - start) / steps)

        timer = Timed(room)
        start = time.perf_counter()
        result = room.run_scenario(sequential)
        wall = time.perf_counter() - start
        timer.detach()
        assert result.ok, result.failure_report()
        through.append(ms(wall) / steps)
        exact.append(ms(wall - timer.inside) / steps)

        # Concurrent members overlap, so the time inside run() exceeds the wall time; the
        # overhead per group is the wall time minus the slowest member of each group (the two
        # members of a group finish before the next group starts).
        timer = Timed(room)
        start = time.perf_counter()
        result = room.run_scenario(pairs)
        wall = time.perf_counter() - start
        timer.detach()
        assert result.ok, result.failure_report()
        spans = timer.durations
        groups = [max(spans[i : i + 2]) for i in range(0, len(spans), 2)]
        exact_pairs.append(ms(wall - sum(groups)) / (2 * len(groups)))
    room.close()
    return {
        "steps": steps,
        "direct_run_ms_per_command": median(direct),
        "scenario_ms_per_step": median(through),
        "difference_ms_per_step": median(through) - median(direct),
        "overhead_ms_per_step": median(exact),
        "overhead_ms_per_concurrent_step": median(exact_pairs),
    }


def repeat_check_cost(
    base: Path, files: int, command: str, repeat: int, policy: str, *, settled: bool
) -> dict[str, Any]:
    """Three commands per fresh test cleanroom, plain and checked, taking turns. The first
    checked command of a test also pays for the replay cleanroom and its scratch directory."""
    plain, first, later = [], [], []
    for i in range(repeat):
        for mode in ("plain", "checked"):
            root = base / f"repeat-{files}-{mode}-{i}" / "workspace"
            populate(root, files)
            room = Cleanroom(root, policy=policy)
            room.run("true")  # warm up outside the measurement
            if settled:  # files written more than the racy window ago: compared by stat only
                time.sleep(0.2)
            checker = attach_repeat_checker(room) if mode == "checked" else None
            timings = []
            for _ in range(3):
                start = time.perf_counter()
                room.run(command)
                timings.append(ms(time.perf_counter() - start))
            if checker is None:
                plain.extend(timings)
            else:
                assert not checker.mismatches, checker.mismatches
                first.append(timings[0])
                later.extend(timings[1:])
                checker.close()
            room.close()
            shutil.rmtree(root.parent, ignore_errors=True)
    one = median(plain)
    return {
        "files": files,
        "written": "settled" if settled else "just now",
        "command": "true" if command == "true" else "write 10 files",
        "plain_ms": one,
        "checked_first_ms": median(first),
        "checked_later_ms": median(later),
        "ratio_later": median(later) / one if one else float("nan"),
        "beyond_two_runs_later_ms": median(later) - 2 * one,
    }


PART_NAMES = ("full scan", "first copy", "read both", "compare", "settle", "catch-up", "old way")


def repeat_parts(base: Path, files: int, repeat: int) -> dict[str, float]:
    """The repeat check's own work on a settled workspace, piece by piece, with 10 files written
    into both trees in place of a command: the first reading of the workspace (a full scan,
    which also sets the inotify watches), the first command's full copy, reading both trees
    after the "command" (inotify events), comparing what changed, settling the copy, and a later
    command's catch-up after the test wrote one file; beside them, the previous scheme's work for
    every checked command (scan, copy the whole workspace, scan the copy, scan both to compare)."""
    root = base / f"parts-{files}" / "workspace"
    populate(root, files)
    time.sleep(0.2)
    parts: dict[str, list[float]] = {name: [] for name in PART_NAMES}
    for _ in range(repeat):
        tree = Tree(root)
        start = time.perf_counter()
        tree.read()
        parts["full scan"].append(ms(time.perf_counter() - start))
        size = sum(key[2] for key in tree.entries.values())
        target = Path(tempfile.mkdtemp(dir=scratch_parent(root, size))) / "copy"
        start = time.perf_counter()
        mirror = Mirror.create(tree, target)
        parts["first copy"].append(ms(time.perf_counter() - start))
        began = time.time_ns()
        for side in (root, target):  # what a command writing 10 files does to each tree
            for i in range(10):
                out = side / "out" / f"{i}.txt"
                out.parent.mkdir(exist_ok=True)
                out.write_text(f"built {i}\n")
        start = time.perf_counter()
        changed = changes_since(tree, began) | changes_since(mirror.copy, began)
        parts["read both"].append(ms(time.perf_counter() - start))
        start = time.perf_counter()
        trees = compare_entries(
            root, tree.entries, tree.taken_ns, target, mirror.entries, changed,
            describe=_first_difference,
        )  # fmt: skip
        parts["compare"].append(ms(time.perf_counter() - start))
        assert trees.difference is None, trees.difference
        start = time.perf_counter()
        mirror.settle(trees)
        parts["settle"].append(ms(time.perf_counter() - start))
        (root / "d00" / "f0000.txt").write_text("the test wrote this\n")
        start = time.perf_counter()
        assert mirror.catch_up(changes_since(tree, tree.taken_ns))
        parts["catch-up"].append(ms(time.perf_counter() - start))
        mirror.close()
        tree.close()
        # The previous scheme, per checked command: scan, copy everything, scan the copy, and
        # compare by scanning both trees again.
        old = target.parent / "old"
        start = time.perf_counter()
        before = Baseline.take(root)
        copy_tree(root, old)
        copied = Baseline.take(old)
        now = time.time_ns()
        assert (
            compare_trees(
                root, before.as_of(now), old, copied.as_of(now), describe=_first_difference
            ).difference
            is None
        )
        parts["old way"].append(ms(time.perf_counter() - start))
        shutil.rmtree(target.parent, ignore_errors=True)
        shutil.rmtree(root / "out")
    shutil.rmtree(root.parent, ignore_errors=True)
    return {name: median(values) for name, values in parts.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--policy", default="standard")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="bench-scenario-"))
    try:
        print(f"scenario overhead: {args.steps} steps x {args.repeat} ...", file=sys.stderr)
        steps = scenario_overhead(base, args.steps, args.repeat, args.policy)
        alone = runner_alone(base, 1000, args.repeat)
        parts = {n: repeat_parts(base, n, args.repeat) for n in (10, 1000)}
        repeats = []
        cases = [
            (10, "true", True),
            (10, WRITE_TEN, True),
            (1000, "true", True),
            (1000, WRITE_TEN, True),
            (1000, "true", False),
        ]
        for files, command, settled in cases:
            print(f"repeat check: {files} files, {command[:20]} ...", file=sys.stderr)
            repeats.append(
                repeat_check_cost(base, files, command, args.repeat, args.policy, settled=settled)
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)

    if args.json:
        steps["runner_alone_ms_per_step"] = alone
        report = {"scenario": steps, "repeat_check": repeats, "repeat_check_parts": parts}
        print(json.dumps(report, indent=2))
        return 0
    print(
        f"\nScenario steps vs direct cleanroom.run (policy {args.policy}, medians of {args.repeat})"
    )
    print(f"{'measure':<52} {'ms':>9}")
    rows = [
        ("direct cleanroom.run, per command", steps["direct_run_ms_per_command"]),
        ("scenario, per step (wall)", steps["scenario_ms_per_step"]),
        ("difference of the two (noisy)", steps["difference_ms_per_step"]),
        ("scenario overhead per step (wall - engine) [goal < 2]", steps["overhead_ms_per_step"]),
        ("  same, steps in concurrent pairs", steps["overhead_ms_per_concurrent_step"]),
        ("runner alone, engine replaced by an instant stand-in", alone),
    ]
    for label, value in rows:
        print(f"{label:<52} {value:>9.3f}")
    print(f"\nRepeat check (policy {args.policy}, medians of {args.repeat})")
    print(
        f"{'files':>6} {'written':<9} {'command':<15} {'plain':>8} {'checked 1st':>12} "
        f"{'checked':>8} {'ratio':>6} {'beyond 2 runs':>14}   (ms)"
    )
    for row in repeats:
        print(
            f"{row['files']:>6} {row['written']:<9} {row['command']:<15} {row['plain_ms']:>8.2f} "
            f"{row['checked_first_ms']:>12.2f} {row['checked_later_ms']:>8.2f} "
            f"{row['ratio_later']:>6.2f} {row['beyond_two_runs_later_ms']:>14.2f}"
        )
    names = PART_NAMES
    print(
        f"\n{'repeat check work, no command':<28}" + "".join(f"{n:>12}" for n in names) + "  (ms)"
    )
    for files, row in parts.items():
        print(f"{f'{files} settled files':<28}" + "".join(f"{row[n]:>12.2f}" for n in names))
    print(
        "checked 1st: a test's first command (also builds the replay cleanroom); checked: later "
        "commands; ratio and 'beyond 2 runs' compare later commands with the plain run"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
