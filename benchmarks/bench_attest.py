"""What attesting a test costs when its workspace holds 1,000 files, and what verifying it costs.

Side by side in one run (medians over --repeat fresh workspaces; measured, never asserted):

1. In-process, around a real sandboxed command (the engine's ``Cleanroom``) that writes 10 files
   and rewrites 1 of the 1,000: the snapshot taken just before the first command, the comparison
   at teardown, building + signing + writing the envelope, their total (goal: under 50 ms), and
   verifying the envelope (signature and every input's and output's sha256). Done twice: with
   files that settled before the snapshot, and with files written just before it (all "racy",
   so all re-hashed at teardown).
2. Peers on the same tree: a full re-hash at teardown (what the stat check avoids), the previous
   scheme's snapshot at creation plus its stat refresh before the first command, the comparison
   by a stat walk (the fallback, and the previous scheme's) instead of the watch's events, the
   engine's own ``Workspace.digest()``, coreutils ``sha256sum`` over every file, and the command.
3. End to end through pytest: the same test (fixture writes 1,000 files, one command) run with and
   without ``--cleanroom-attest``; per-test time of the call and teardown phases, where the
   attestation's work happens (setup, which writes the files, is left out: on a slow disk its
   noise would drown the difference).

Run: ``.venv/bin/python benchmarks/bench_attest.py [--files 1000] [--repeat 7] [--json]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pytest_cleanroom.attest.attester import Attester
from pytest_cleanroom.attest.digests import RACY_WINDOW_NS, compare, refresh, take_snapshot
from pytest_cleanroom.attest.keys import SigningKey
from pytest_cleanroom.attest.statement import AttestedTest, Builder
from pytest_cleanroom.attest.verify import verify
from pytest_cleanroom.engine import Cleanroom
from pytest_cleanroom.workspace import Workspace

COMMAND = (
    "mkdir -p out && for i in 0 1 2 3 4 5 6 7 8 9; do echo built $i > out/$i.txt; done"
    " && echo changed > d00/f0000.txt"
)


def populate(root: Path, files: int) -> None:
    """``files`` files of 1-4 KiB in 20 directories."""
    for i in range(files):
        path = root / f"d{i % 20:02d}" / f"f{i:04d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((f"line {i}\n" * (100 + (i % 4) * 100)).encode())


Cost = tuple[float, float]  # (wall-clock ms, CPU ms of this process and its children)


def _cpu() -> float:
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[Cost, Any]:
    """Wall-clock and CPU time: on a busy machine the CPU figure is the steadier one."""
    wall, cpu = time.perf_counter(), _cpu()
    value = fn()
    return ((time.perf_counter() - wall) * 1000, (_cpu() - cpu) * 1000), value


def one_round(base: Path, files: int, settled: bool, key: SigningKey) -> dict[str, Cost]:
    ws_root = base / "ws"
    out_dir = base / "att"
    out_dir.mkdir()
    populate(ws_root, files)
    if settled:
        time.sleep(RACY_WINDOW_NS / 1e9 + 0.05)
    room = Cleanroom(ws_root, policy="standard")
    attester = Attester(out_dir, key, Builder.current("bench"))
    row: dict[str, Cost] = {}
    row["snapshot before 1st command"], before = timed(lambda: take_snapshot(ws_root, watch=True))
    row["command"], result = timed(lambda: room.run(COMMAND))
    assert result.exit_code == 0, result.describe()
    walked = dataclasses.replace(before, tree=None)  # the same snapshot, compared by a walk
    row["compare"], changes = timed(lambda: compare(before))
    assert len(changes.outputs) == 11, sorted(changes.outputs)
    before.close()
    row["peer: compare by a walk"], walk_changes = timed(lambda: compare(walked))
    assert walk_changes == changes
    test = AttestedTest("bench::test", [result], str(ws_root), changes, time.time(), time.time())
    row["sign+write"], written = timed(lambda: attester.attest_test(test))
    steps = ("snapshot before 1st command", "compare", "sign+write")
    row["attest total"] = (sum(row[k][0] for k in steps), sum(row[k][1] for k in steps))
    public = base / "key.pub"
    public.write_bytes(key.public.pem())
    row["verify"], report = timed(lambda: verify(out_dir / written.name, key=public))
    assert report.ok, report.failures()
    assert report.checks[0].checked_files == files + 10  # inputs + outputs
    row["peer: full re-hash"], _ = timed(lambda: take_snapshot(ws_root))
    # The previous scheme: every file hashed when the cleanroom was made, a stat walk to bring
    # that up to date before the first command.
    row["peer: old snapshot+refresh"], _ = timed(lambda: refresh(take_snapshot(ws_root)))
    row["peer: Workspace.digest()"], _ = timed(lambda: Workspace(ws_root).digest())
    sha256sum = shutil.which("sha256sum")
    if sha256sum:
        listing = [str(p) for p in sorted(ws_root.rglob("*")) if p.is_file()]
        row["peer: sha256sum (process)"], _ = timed(
            lambda: subprocess.run([sha256sum, *listing], capture_output=True, check=True)
        )
    room.close()
    return row


PYTEST_TEST = """
import pytest

@pytest.fixture
def filled(workspace):
    for d in range(20):
        (workspace.root / f"d{{d:02d}}").mkdir()
    for i in range({files}):
        with open(workspace.root / f"d{{i % 20:02d}}" / f"f{{i:04d}}.txt", "w") as handle:
            handle.write(f"line {{i}}\\n" * 200)
    return workspace

@pytest.mark.parametrize("n", range({tests}))
def test_build(cleanroom, filled, n):
    cleanroom.run("mkdir -p out && echo $n > out/result.txt").assert_success()
"""

PHASE_LOG = """
import json, os

def pytest_runtest_logreport(report):
    if report.when in ("call", "teardown"):
        with open(os.environ["BENCH_PHASES"], "a") as log:
            log.write(json.dumps([report.nodeid, report.duration]) + "\\n")
"""


def end_to_end(files: int, tests: int) -> dict[str, float]:
    """Median per-test call + teardown time with and without --cleanroom-attest."""
    times: dict[str, list[float]] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory(prefix="bench-attest-") as tmp:
        root = Path(tmp)
        (root / "test_e2e.py").write_text(PYTEST_TEST.format(files=files, tests=tests))
        (root / "conftest.py").write_text(PHASE_LOG)
        for _ in range(3):
            for label, extra in (("without", []), ("with", ["--cleanroom-attest=att"])):
                log = root / f"{label}.jsonl"
                log.unlink(missing_ok=True)
                subprocess.run(
                    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra],
                    cwd=root, capture_output=True, check=True,
                    env={**os.environ, "BENCH_PHASES": str(log)},
                )  # fmt: skip
                per_test: dict[str, float] = {}
                for line in log.read_text().splitlines():
                    nodeid, duration = json.loads(line)
                    per_test[nodeid] = per_test.get(nodeid, 0.0) + duration * 1000
                times[label] += per_test.values()
    without = statistics.median(times["without"])
    with_attest = statistics.median(times["with"])
    return {
        "call+teardown, without": without,
        "call+teardown, --cleanroom-attest": with_attest,
        "added by attesting": with_attest - without,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--tests", type=int, default=8, help="tests in the end-to-end run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    key = SigningKey.generate()
    steps: dict[str, dict[str, Cost]] = {}
    for settled in (True, False):
        rounds = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="bench-attest-") as tmp:
                rounds.append(one_round(Path(tmp), args.files, settled, key))
        label = "settled" if settled else "fresh"
        steps[label] = {
            k: (
                statistics.median(r[k][0] for r in rounds),
                statistics.median(r[k][1] for r in rounds),
            )
            for k in rounds[0]
        }
    e2e = end_to_end(args.files, args.tests)
    load = os.getloadavg()[0]

    if args.json:
        print(json.dumps({"files": args.files, "repeat": args.repeat, "load": load,
                          "steps": steps, "end_to_end": e2e}))  # fmt: skip
        return
    print(f"attesting a test whose workspace holds {args.files} files: median of {args.repeat} "
          f"rounds, ms (load average {load:.1f} on {os.cpu_count()} CPUs)")  # fmt: skip
    print("settled: files written > 100 ms before the snapshot; fresh: written just before")
    header = ["settled wall", "settled CPU", "fresh wall", "fresh CPU"]
    print(f"{'step':<30}" + "".join(f"{h:>14}" for h in header))
    for step in steps["settled"]:
        values = [*steps["settled"][step], *steps["fresh"].get(step, (float("nan"),) * 2)]
        goal = "   goal < 50" if step == "attest total" else ""
        print(f"{step:<30}" + "".join(f"{v:>14.2f}" for v in values) + goal)
    print()
    print(f"end to end through pytest ({args.tests} tests x 3 runs, median ms per test)")
    for step, value in e2e.items():
        print(f"{step:<36}{value:>10.2f}")


if __name__ == "__main__":
    main()
