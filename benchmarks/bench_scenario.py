"""What a scenario adds per step to the engine's own cost, and what the repeat check costs.

Side by side in one run (medians; measured, never asserted):

1. Per-step overhead of a scenario over direct ``cleanroom.run``: the same N commands (``true``)
   run (a) one by one through ``cleanroom.run`` and (b) as an N-step scenario through
   ``cleanroom.run_scenario``. Sandboxed commands vary by several milliseconds from run to run, so
   the overhead is also measured exactly: the scenario's wall time minus the time spent inside
   ``cleanroom.run`` (the engine's cost), divided by the steps. Also for a concurrent group of 2
   (threads). Goal: under 2 ms per step.
2. The repeat check's cost: commands (``true``, and one that writes 10 files) in workspaces of
   10 and 1,000 files, plain and under the repeat check in its two ways, side by side: on
   copy-on-write overlays of the workspace (the default where overlays can be mounted) and on a
   copy of it (docker, or ``copy_on_write=False``). The check runs each command a second time,
   so it costs one extra run plus its own work; "beyond 2 runs" is that work. A test's first
   checked command is shown apart: it builds the replay cleanroom, and the copy way also copies
   the whole workspace then.
3. The check's own work, piece by piece, without commands (the files a command would write are
   written directly): for overlays, mounting both views, reading what changed from the upper
   layers, comparing, applying the first run's changes, unmounting; for the copy, the first
   reading and copy of the workspace, reading and comparing both trees, settling and catching up.

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
from pytest_cleanroom.repeat.checker import _first_difference
from pytest_cleanroom.repeat.entries import apply_changes
from pytest_cleanroom.repeat.mirror import Mirror
from pytest_cleanroom.repeat.overlay import OverlayPair
from pytest_cleanroom.repeat.replay import attach_repeat_checker
from pytest_cleanroom.repeat.tree import Tree, changes_since
from pytest_cleanroom.repeat.treediff import (
    Baseline,
    compare_entries,
    compare_trees,
    copy_tree,
    scratch_parent,
)
from pytest_cleanroom.result import RunResult
from pytest_cleanroom.scenarios import scenario, step
from pytest_cleanroom.scenarios.runner import run_scenario

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


MODES = ("plain", "overlay", "copy")


def repeat_check_cost(
    base: Path, files: int, command: str, repeat: int, policy: str, *, settled: bool
) -> dict[str, Any]:
    """Three commands per fresh test cleanroom, plain and checked both ways, taking turns."""
    plain: list[float] = []
    first: dict[str, list[float]] = {"overlay": [], "copy": []}
    later: dict[str, list[float]] = {"overlay": [], "copy": []}
    for i in range(repeat):
        for mode in MODES:
            root = base / f"repeat-{files}-{mode}-{i}" / "workspace"
            populate(root, files)
            room = Cleanroom(root, policy=policy)
            room.run("true")  # warm up outside the measurement
            if settled:  # files written more than the racy window ago: compared by stat only
                time.sleep(0.2)
            checker = (
                None
                if mode == "plain"
                else attach_repeat_checker(room, copy_on_write=mode == "overlay")
            )
            timings = []
            for _ in range(3):
                start = time.perf_counter()
                room.run(command)
                timings.append(ms(time.perf_counter() - start))
            if checker is None:
                plain.extend(timings)
            else:
                assert not checker.mismatches, checker.mismatches
                assert (checker.overlay_units > 0) == (mode == "overlay"), mode
                first[mode].append(timings[0])
                later[mode].extend(timings[1:])
                checker.close()
            room.close()
            shutil.rmtree(root.parent, ignore_errors=True)
    one = median(plain)
    row: dict[str, Any] = {
        "files": files,
        "written": "settled" if settled else "just now",
        "command": "true" if command == "true" else "write 10 files",
        "plain_ms": one,
    }
    for mode in ("overlay", "copy"):
        row[f"{mode}_first_ms"] = median(first[mode])
        row[f"{mode}_later_ms"] = median(later[mode])
        row[f"{mode}_first_beyond_two_runs_ms"] = median(first[mode]) - 2 * one
        row[f"{mode}_later_beyond_two_runs_ms"] = median(later[mode]) - 2 * one
    return row


OVERLAY_PART_NAMES = ("mount both", "changes", "compare", "apply", "unmount", "total")


def overlay_parts(base: Path, files: int, repeat: int) -> dict[str, float]:
    """The overlay way's own work around a command that writes 10 files in each view."""
    root = base / f"overlay-parts-{files}" / "workspace"
    populate(root, files)
    pair = OverlayPair.create(root)
    parts: dict[str, list[float]] = {name: [] for name in OVERLAY_PART_NAMES}
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            pair.mount()
            parts["mount both"].append(ms(time.perf_counter() - start))
            for view in (pair.first.merged, pair.second.merged):
                for i in range(10):
                    out = view / "out" / f"{i}.txt"
                    out.parent.mkdir(exist_ok=True)
                    out.write_text(f"built {i}\n")
            start = time.perf_counter()
            first = pair.first.changes(root)
            changed = first | pair.second.changes(root)
            parts["changes"].append(ms(time.perf_counter() - start))
            start = time.perf_counter()
            trees = compare_entries(
                pair.first.merged, pair.first.keys(changed), 0,
                pair.second.merged, pair.second.keys(changed), changed,
                describe=_first_difference,
            )  # fmt: skip
            parts["compare"].append(ms(time.perf_counter() - start))
            assert trees.difference is None, trees.difference
            start = time.perf_counter()
            apply_changes(pair.first.merged, root, first, pair.staging())
            parts["apply"].append(ms(time.perf_counter() - start))
            start = time.perf_counter()
            pair.unmount()
            parts["unmount"].append(ms(time.perf_counter() - start))
            parts["total"].append(sum(values[-1] for values in list(parts.values())[:5]))
            shutil.rmtree(root / "out")
    finally:
        pair.close()
        shutil.rmtree(root.parent, ignore_errors=True)
    return {name: median(values) for name, values in parts.items()}


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
        overlay = {n: overlay_parts(base, n, args.repeat) for n in (10, 1000)}
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
        report = {
            "scenario": steps,
            "repeat_check": repeats,
            "repeat_check_parts_copy": parts,
            "repeat_check_parts_overlay": overlay,
        }
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
    print(f"\nRepeat check (policy {args.policy}, medians of {args.repeat}; ms)")
    print(
        f"{'files':>6} {'written':<9} {'command':<15} {'plain':>7} | {'overlay 1st':>11} "
        f"{'later':>7} {'beyond 2 runs':>13} | {'copy 1st':>9} {'later':>7} {'beyond 2 runs':>13}"
    )
    for row in repeats:
        print(
            f"{row['files']:>6} {row['written']:<9} {row['command']:<15} {row['plain_ms']:>7.1f} | "
            f"{row['overlay_first_ms']:>11.1f} {row['overlay_later_ms']:>7.1f} "
            f"{_pair(row, 'overlay'):>13} | {row['copy_first_ms']:>9.1f} "
            f"{row['copy_later_ms']:>7.1f} {_pair(row, 'copy'):>13}"
        )
    print("('beyond 2 runs': first command / later commands, minus twice the plain run)")
    print(f"\n{'overlay work, no command':<28}" + "".join(f"{n:>12}" for n in OVERLAY_PART_NAMES))
    for files, values in overlay.items():
        print(
            f"{f'{files} files, 10 written':<28}"
            + "".join(f"{values[n]:>12.2f}" for n in OVERLAY_PART_NAMES)
        )
    names = PART_NAMES
    print(f"\n{'copy work, no command':<28}" + "".join(f"{n:>12}" for n in names) + "  (ms)")
    for files, row in parts.items():
        print(f"{f'{files} settled files':<28}" + "".join(f"{row[n]:>12.2f}" for n in names))
    return 0


def _pair(row: dict[str, Any], mode: str) -> str:
    first = row[f"{mode}_first_beyond_two_runs_ms"]
    later = row[f"{mode}_later_beyond_two_runs_ms"]
    return f"{first:.1f} / {later:.1f}"


if __name__ == "__main__":
    raise SystemExit(main())
