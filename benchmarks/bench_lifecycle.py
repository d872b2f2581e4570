"""Benchmark of ``ggen lifecycle``: parallel speed-up, per-task overhead, cache hits.

Side by side in one run:

1. Four workspaces whose build sleeps 100 ms, run sequentially (``-j 1``) and with ``-j 4``
   through ``ggen lifecycle run build --json`` (span = first task start to last task end, from the
   JSON summary), and the same graph through GNU ``make -j1``/``make -j4`` (wall time, minus the
   time make needs to run an empty Makefile). Per-task overhead = (sequential time - 4 x 100 ms)/4.
2. A phase over 1,000 input files: the time of a cache hit for the whole ``ggen lifecycle run``
   process, run through an installed ``ggen`` script as a user runs it (what a user waits for:
   the figure judged against the 200 ms goal and against turbo), as wall clock and as CPU time
   (user + system, which other work on the machine disturbs less), against Turborepo on the same
   files (turbo's native binary, installed by ``scripts/turbo-tools.sh``). Two installed forms:
   the development install's script (``.venv/bin/ggen``, an editable install: its ``.pth`` puts
   ``src`` on the path), and a wheel built from this tree installed (not editable) in a fresh
   virtual environment of its own (its third-party dependencies, which a hit never loads, come
   from the development environment through a ``.pth``). Also the same hit with a full run
   history in ``state.json`` (2,000 runs and tasks: a project used for a while), and the full
   command (``GGEN_LIFECYCLE_FAST=0``: make.toml loaded, the runner run); all run by run in turn,
   with ``python -c pass`` for scale; and the task's duration inside the runner (JSON summary).

3. The remote cache, against the real ``turborepo-remote-cache`` server on 127.0.0.1 (installed by
   ``scripts/turbo-tools.sh``): a build of 200 output files (4 MiB, the command sleeps 0.5 s for
   the work) run cold, as a second machine's ``run`` with a warm remote cache (a fresh copy of the
   project, no ``.ggen``), and as a local hit; turbo on the same server for reference (a fresh
   copy's remote hit), when ``turbo`` installs and runs here.

Run: ``.venv/bin/python benchmarks/bench_lifecycle.py [--repeat 5] [--only cache] [--json]``.
Prints one table headed by the date and the machine's load (``--json``: the same rows as data).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from process_timing import CHILD_ENV, time_process

from ggen_lifecycle.files import HashMemo

#: The installed ``ggen`` script beside this interpreter: what a user runs (site and all).
GGEN = [str(Path(sys.executable).with_name("ggen")), "lifecycle"]
REPO = Path(__file__).resolve().parents[1]
SLEEP = 0.1
FILES = 1000
HISTORY = 2000  # state.json's limit of run and of task records


@dataclass
class Row:
    """One line of the table; ``data`` holds its figures for ``--json``."""

    measure: str
    value: str
    reference: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def timed_cpu(
    command: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child: user + system, stdout) of one run."""
    timing = time_process(command, cwd, env)
    return timing.wall_ms / 1000, timing.cpu_ms / 1000, timing.stdout


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    wall, _, out = timed_cpu(command, cwd, env)
    return wall, out


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"


def fastest(walls: list[float], cpus: list[float]) -> str:
    """The fastest run, wall / CPU: what an idle machine gives, when other work disturbs."""
    return f"{min(walls) * 1000:.0f} / {min(cpus) * 1000:.0f} ms"


def median(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


# -- 1. four sleeping workspaces -----------------------------------------------------------------


def four_workspaces(root: Path) -> None:
    lines = []
    for i in range(1, 5):
        (root / f"w{i}").mkdir(parents=True)
        lines.append(f'[workspace.w{i}]\npath = "w{i}"\n')
    lines.append(f'[lifecycle.build]\ncommand = "sleep {SLEEP}"\n')
    (root / "make.toml").write_text("\n".join(lines))
    targets = " ".join(f"w{i}" for i in range(1, 5))
    rules = "".join(f"w{i}:\n\tcd w{i} && sleep {SLEEP}\n" for i in range(1, 5))
    (root / "Makefile").write_text(f".PHONY: all empty {targets}\nall: {targets}\n{rules}empty:\n")


def ggen_span(root: Path, jobs: int) -> tuple[float, float]:
    wall, out = timed([*GGEN, "run", "build", "-j", str(jobs), "--json", "-q"], root)
    return json.loads(out)["span"], wall


def bench_parallel(work: Path, repeat: int) -> list[Row]:
    root = work / "four"
    four_workspaces(root)
    spans: dict[int, list[float]] = {1: [], 4: []}
    walls: dict[int, list[float]] = {1: [], 4: []}
    for _ in range(repeat):
        for jobs in (1, 4):
            span, wall = ggen_span(root, jobs)
            spans[jobs].append(span)
            walls[jobs].append(wall)
    make = shutil.which("make")
    make_times: dict[str, float] = {}
    if make:
        empty = median(lambda: timed([make, "-s", "empty"], root)[0], repeat)
        for jobs in (1, 4):
            make_times[f"j{jobs}"] = (
                median(lambda j=jobs: timed([make, "-s", f"-j{j}", "all"], root)[0], repeat) - empty
            )
    seq, par = statistics.median(spans[1]), statistics.median(spans[4])
    ggen_overhead = (seq - 4 * SLEEP) / 4
    no_make = "make: not found"
    rows = [
        Row(
            "4 x sleep 100ms, -j 1: span (ggen JSON)",
            f"{seq * 1000:.0f} ms",
            f"make -j1: {make_times['j1'] * 1000:.0f} ms" if make else no_make,
            {"span_ms": seq * 1000, "make_ms": make_times.get("j1", 0) * 1000 or None},
        ),
        Row(
            "4 x sleep 100ms, -j 4: span (ggen JSON)",
            f"{par * 1000:.0f} ms",
            f"make -j4: {make_times['j4'] * 1000:.0f} ms" if make else no_make,
            {"span_ms": par * 1000, "make_ms": make_times.get("j4", 0) * 1000 or None},
        ),
        Row(
            "  goal: -j 4 span < 150 ms",
            "met" if par < 0.150 else "NOT met",
            "",
            {"met": par < 0.150},
        ),
    ]
    if make:
        make_overhead = (make_times["j1"] - 4 * SLEEP) / 4
        difference = ggen_overhead - make_overhead
        rows.append(
            Row(
                "per-task overhead (sequential - 400 ms) / 4",
                f"{ggen_overhead * 1000:.1f} ms",
                f"make: {make_overhead * 1000:.1f} ms",
                {"ggen_ms": ggen_overhead * 1000, "make_ms": make_overhead * 1000},
            )
        )
        rows.append(
            Row(
                "  goal: within 15 ms of make's",
                "met" if difference <= 0.015 else "NOT met",
                f"difference {difference * 1000:.1f} ms",
                {"met": difference <= 0.015, "difference_ms": difference * 1000},
            )
        )
    wall4 = statistics.median(walls[4])
    rows.append(
        Row(
            "  whole `ggen lifecycle run` process, -j 4 (wall)",
            f"{wall4 * 1000:.0f} ms",
            "includes Python start-up",
            {"wall_ms": wall4 * 1000},
        )
    )
    return rows


# -- 2. cache hit over 1,000 files ---------------------------------------------------------------


def thousand_files(root: Path) -> None:
    src = root / "pkg" / "src"
    src.mkdir(parents=True)
    for i in range(FILES):
        (src / f"f{i:04d}.txt").write_text(f"file {i}\n" * 20)
    (root / "make.toml").write_text(
        '[workspace.pkg]\npath = "pkg"\n'
        "[lifecycle.hash]\n"
        'command = "mkdir -p out && cat src/*.txt | wc -l > out/count"\n'
        'inputs = ["src/**"]\noutputs = ["out/**"]\n'
    )


def wheel_install(work: Path) -> tuple[list[str] | None, str]:
    """``ggen lifecycle`` of a wheel built from this tree, installed (not editable) in a virtual
    environment of its own; ``(None, why)`` when it cannot be built or installed here."""
    dist, venv = work / "dist", work / "wheel-venv"
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(dist), str(REPO)],
        [base, "-m", "venv", "--without-pip", str(venv)],
    ]  # fmt: skip
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return None, f"{step[2]} failed: {done.stderr.strip()[-200:]}"
    python = venv / "bin" / "python"
    wheels = sorted(dist.glob("pytest_cleanroom-*.whl"))
    # this environment's pip run by the new interpreter: the script's #! names the new one
    install = [str(python), str(site / "pip"), "install", "-q", "--no-deps", "--no-index",
               str(wheels[-1])]  # fmt: skip
    done = subprocess.run(install, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return None, f"pip install failed: {done.stderr.strip()[-200:]}"
    (purelib,) = venv.glob("lib/python*/site-packages")
    (purelib / "zz-bench-dependencies.pth").write_text(f"{site}\n")  # after its own packages
    return [str(venv / "bin" / "ggen"), "lifecycle"], str(wheels[-1].name)


def fill_history(root: Path) -> None:
    """Give ``root``'s state.json a full history: :data:`HISTORY` runs and tasks (copies of its
    latest records), what a project used for a while holds."""
    from ggen_lifecycle.state import StateStore

    def full(data: dict[str, Any]) -> None:
        for key in ("runs", "tasks"):
            data[key] = [dict(data[key][-1]) for _ in range(HISTORY)]

    StateStore(root / ".ggen" / "state.json").update(full)


def prepare(root: Path, ggen: list[str]) -> None:
    """Fill ``root``'s cache through ``ggen``, let its inputs age and hit once, so that the memo
    knows them: files edited in the last 2 s are always hashed (the memo trusts only older
    identities); a project's files are older than that, and its first hit teaches the memo."""
    timed([*ggen, "run", "hash", "-q"], root)
    time.sleep(HashMemo.RECENT_NS / 1e9 + 0.2)
    timed([*ggen, "run", "hash", "-q"], root)


def bench_cache(work: Path, repeat: int) -> list[Row]:
    """ggen's answer (the cache-hit fast path) through each installed form, with a full run
    history, the full command (``GGEN_LIFECYCLE_FAST=0``) and turbo, interleaved run by run so
    that the machine's load weighs on each alike."""
    template = work / "thousand-template"
    thousand_files(template)
    wheel, wheel_note = wheel_install(work)
    kinds: dict[str, tuple[Path, list[str], dict[str, str] | None]] = {}
    for kind, ggen, env in (
        ("editable", GGEN, None),
        ("wheel", wheel, None),
        ("history", GGEN, None),
        ("full", GGEN, dict(CHILD_ENV, GGEN_LIFECYCLE_FAST="0")),
    ):
        if ggen is None:
            continue
        root = work / f"thousand-{kind}"
        shutil.copytree(template, root)
        prepare(root, ggen)
        kinds[kind] = (root, ggen, env)
    fill_history(kinds["history"][0])
    turbo, turbo_env = setup_turbo(kinds["editable"][0])
    names = [*kinds, *(["turbo"] if turbo else [])]
    walls: dict[str, list[float]] = {k: [] for k in names}
    cpus: dict[str, list[float]] = {k: [] for k in names}
    inner: list[float] = []
    for _ in range(repeat):
        for kind in names:
            root, ggen, env = kinds["editable" if kind == "turbo" else kind]
            shutil.rmtree(root / "pkg" / "out", ignore_errors=True)
            if kind == "turbo":
                assert turbo is not None
                wall, cpu, out = timed_cpu(
                    [turbo, "run", "hash", "--output-logs=none"], root, turbo_env
                )
                if "1 cached" not in out:
                    raise SystemExit(f"turbo: no cache hit ({out.strip()[-200:]})")
            else:
                wall, cpu, out = timed_cpu([*ggen, "run", "hash", "--json", "-q"], root, env)
                task = json.loads(out)["tasks"][0]
                if task["cache"] != "hit":
                    raise SystemExit(f"expected a cache hit, got {task}")
                if kind == "editable":
                    inner.append(task["duration"])
            walls[kind].append(wall)
            cpus[kind].append(cpu)
    python = [timed_cpu([sys.executable, "-c", "pass"], template) for _ in range(repeat)]
    return cache_rows(walls, cpus, inner, python, turbo, wheel_note)


def cache_rows(
    walls: dict[str, list[float]],
    cpus: dict[str, list[float]],
    inner: list[float],
    python: list[tuple[float, float, str]],
    turbo: str | None,
    wheel_note: str,
) -> list[Row]:
    def figures(kind: str) -> dict[str, float]:
        return {
            "cpu_ms": statistics.median(cpus[kind]) * 1000,
            "wall_ms": statistics.median(walls[kind]) * 1000,
            "fastest_cpu_ms": min(cpus[kind]) * 1000,
            "fastest_wall_ms": min(walls[kind]) * 1000,
        }

    def both(kind: str) -> str:
        return f"{ms(cpus[kind])} / {ms(walls[kind])}"

    if turbo:
        version = subprocess.run([turbo, "--version"], capture_output=True, text=True)
        name = f"turbo {version.stdout.strip()}"
        reference = [
            f"{name} (CPU): {ms(cpus['turbo'])}",
            f"{name} (wall): {ms(walls['turbo'])}",
            f"{name}: {fastest(walls['turbo'], cpus['turbo'])}",
        ]
        turbo_data = {"turbo": name, **{f"turbo_{k}": v for k, v in figures("turbo").items()}}
    else:
        reference = ["turbo: not installable here (scripts/turbo-tools.sh turbo)", "", ""]
        turbo_data = {}
    editable = figures("editable")
    cpu_met = editable["cpu_ms"] < 200
    faster = {
        kind: bool(turbo) and statistics.median(cpus[kind]) < statistics.median(cpus["turbo"])
        for kind in cpus
        if kind in ("editable", "wheel")
    }
    python_ms = [p[0] * 1000 for p in python], [p[1] * 1000 for p in python]
    rows = [
        Row(
            f"cache hit, {FILES} input files: whole `ggen` process, CPU (editable install)",
            ms(cpus["editable"]),
            reference[0],
            {**editable, **turbo_data},
        ),
        Row("  the same, wall clock", ms(walls["editable"]), reference[1]),
        Row(
            "  the same, fastest run (wall / CPU)",
            fastest(walls["editable"], cpus["editable"]),
            reference[2],
        ),
    ]
    if "wheel" in cpus:
        rows.append(
            Row(
                "  installed from a wheel (not editable), CPU / wall",
                both("wheel"),
                wheel_note,
                figures("wheel"),
            )
        )
    else:
        rows.append(Row("  installed from a wheel (not editable)", "not measured", wheel_note))
    rows += [
        Row(
            f"  with a full history in state.json ({HISTORY} runs and tasks), CPU / wall",
            both("history"),
            "editable install",
            figures("history"),
        ),
        Row(
            "  goal: whole-process cache hit < 200 ms",
            "met" if editable["wall_ms"] < 200 else "NOT met",
            f"(wall median; by CPU median: {'met' if cpu_met else 'NOT met'}; python -c pass: "
            f"{statistics.median(python_ms[0]):.0f} ms wall, "
            f"{statistics.median(python_ms[1]):.0f} ms CPU)",
            {
                "met": editable["wall_ms"] < 200,
                "cpu_met": cpu_met,
                "python_wall_ms": statistics.median(python_ms[0]),
                "python_cpu_ms": statistics.median(python_ms[1]),
            },
        ),
        Row(
            "  goal: faster than turbo (CPU median)",
            "met" if faster.get("editable") else "NOT met",
            "installed from a wheel: " + ("met" if faster.get("wheel") else "NOT met"),
            {f"met_{k}": v for k, v in faster.items()},
        ),
        Row(
            "  the full command (GGEN_LIFECYCLE_FAST=0), CPU / wall",
            both("full"),
            "make.toml loaded, the runner's modules imported",
            figures("full"),
        ),
        Row(
            "  inside the runner (task duration, JSON)",
            ms(inner),
            "turbo: no inner timing",
            {"duration_ms": statistics.median(inner) * 1000},
        ),
    ]
    return rows


def turbo_binary() -> str | None:
    """turbo's native binary, installed by ``scripts/turbo-tools.sh`` (its ``bin/turbo`` is a
    Node.js launcher that would add Node's start-up to every run), or ``None``."""
    tools = Path(__file__).resolve().parents[1] / "scripts" / "turbo-tools.sh"
    done = subprocess.run(["bash", str(tools), "turbo"], capture_output=True, text=True)
    launcher = Path(done.stdout.strip())
    if done.returncode != 0 or not launcher.exists():
        return None
    modules = launcher.resolve().parents[2]  # .../node_modules/turbo/bin/turbo
    native = sorted(modules.glob("turbo-*/bin/turbo")) + sorted(modules.glob("@turbo/*/bin/turbo"))
    return str(native[0]) if native else None


def setup_turbo(root: Path) -> tuple[str | None, dict[str, str]]:
    """turbo's binary, set up on ``root``'s files with its cache filled, and its environment."""
    env = dict(
        os.environ, TURBO_TELEMETRY_DISABLED="1", DO_NOT_TRACK="1", TURBO_NO_UPDATE_NOTIFIER="1"
    )
    turbo = turbo_binary()
    if turbo is None:
        return None, env
    (root / "package.json").write_text(
        json.dumps(
            {
                "name": "bench",
                "private": True,
                "packageManager": "npm@10.0.0",
                "workspaces": ["pkg"],
            }
        )
    )
    (root / "pkg" / "package.json").write_text(
        json.dumps(
            {
                "name": "pkg",
                "version": "1.0.0",
                "scripts": {"hash": "mkdir -p out && cat src/*.txt | wc -l > out/count"},
            }
        )
    )
    (root / "turbo.json").write_text(
        json.dumps({"tasks": {"hash": {"inputs": ["src/**"], "outputs": ["out/**"]}}})
    )
    npm = shutil.which("npm")
    if npm is not None:  # a lockfile, so that turbo resolves the workspaces (no dependencies)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=root,
            capture_output=True,
            check=False,
        )
    timed([turbo, "run", "hash", "--output-logs=none"], root, env)
    return turbo, env


REMOTE_BUILD = (
    "python3 -c \"import os, time; os.makedirs('out', exist_ok=True); time.sleep(0.5); "
    "[open(f'out/f{i:03d}.bin', 'wb').write(os.urandom(20480)) for i in range(200)]\""
)


def remote_project(root: Path) -> None:
    src = root / "pkg" / "src"
    src.mkdir(parents=True)
    for i in range(50):
        (src / f"s{i:02d}.txt").write_text(f"source {i}\n" * 50)
    (root / "make.toml").write_text(
        '[workspace.pkg]\npath = "pkg"\n[lifecycle.build]\n'
        f"command = {json.dumps(REMOTE_BUILD)}\n"
        'inputs = ["src/**"]\noutputs = ["out/**"]\n'
    )


def ggen_build(root: Path, env: dict[str, str], expected: str) -> float:
    wall, out = timed([*GGEN, "run", "build", "--json", "-q"], root, env)
    cache = json.loads(out)["tasks"][0]["cache"]
    if cache != expected:
        raise SystemExit(f"expected cache {expected!r}, got {cache!r}")
    return wall


def bench_remote(work: Path, repeat: int) -> list[Row]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.integration.lifecycle.turbo_server import server_cli, start_server

    cli = server_cli()
    if cli is None:
        return [
            Row("remote cache", "not measured", "turborepo-remote-cache could not be installed")
        ]
    server = start_server(cli, work / "server")
    try:
        template = work / "remote-template"
        remote_project(template)
        base = {k: v for k, v in os.environ.items() if not k.startswith("TURBO_")}
        cold, warm, local = [], [], []
        for i in range(repeat):
            env = dict(base, TURBO_API=server.url, TURBO_TOKEN=server.token)
            env.update(TURBO_TEAM=f"bench{i}", TURBO_REMOTE_CACHE_SIGNATURE_KEY="bench-key")
            first, second = work / f"first{i}", work / f"second{i}"
            shutil.copytree(template, first)
            shutil.copytree(template, second)
            cold.append(ggen_build(first, dict(env, GGEN_REMOTE_CACHE="off"), "miss"))
            ggen_build(first, env, "hit")  # no upload on a hit: the next build uploads
            shutil.rmtree(first / ".ggen")
            ggen_build(first, env, "miss")  # builds and uploads
            warm.append(ggen_build(second, env, "remote hit"))
            shutil.rmtree(second / "pkg" / "out")
            local.append(ggen_build(second, env, "hit"))
        turbo = turbo_remote(work, server, repeat)
    finally:
        server.stop()
    return [
        Row(
            "remote cache: cold build (200 files, 0.5 s of work)",
            ms(cold),
            "",
            {"wall_ms": statistics.median(cold) * 1000},
        ),
        Row(
            "  second machine, warm remote cache (remote hit)",
            ms(warm),
            turbo,
            {"wall_ms": statistics.median(warm) * 1000},
        ),
        Row(
            "  local hit (same outputs)",
            ms(local),
            "",
            {"wall_ms": statistics.median(local) * 1000},
        ),
    ]


def turbo_remote(work: Path, server: Any, repeat: int) -> str:
    """turbo's remote hit on a fresh copy, against the same server (a reference row), and
    whether the x-artifact-tag turbo stored verifies with ggen's check."""
    from ggen_lifecycle.remote_cache.signature import tag_matches

    turbo = turbo_binary()
    if turbo is None:
        return "turbo: not installable here"
    template = work / "turbo-template"
    remote_project(template)
    (template / "package.json").write_text(
        json.dumps(
            {
                "name": "bench",
                "private": True,
                "packageManager": "npm@10.0.0",
                "workspaces": ["pkg"],
            }
        )
    )
    (template / "pkg" / "package.json").write_text(
        json.dumps({"name": "pkg", "version": "1.0.0", "scripts": {"build": REMOTE_BUILD}})
    )
    (template / "turbo.json").write_text(
        json.dumps(
            {
                "remoteCache": {"signature": True},
                "tasks": {"build": {"inputs": ["src/**"], "outputs": ["out/**"]}},
            }
        )
    )
    env = dict(
        os.environ,
        TURBO_TELEMETRY_DISABLED="1",
        DO_NOT_TRACK="1",
        TURBO_NO_UPDATE_NOTIFIER="1",
        TURBO_API=server.url,
        TURBO_TOKEN=server.token,
        TURBO_TEAM="turbo-bench",
        TURBO_REMOTE_CACHE_SIGNATURE_KEY="bench-key",
    )
    walls = []
    for i in range(repeat + 1):
        copy = work / f"turbo{i}"
        shutil.copytree(template, copy)
        subprocess.run(["git", "init", "-q"], cwd=copy, check=False)
        wall, out = timed([turbo, "run", "build", "--output-logs=none"], copy, env)
        if i == 0:
            continue  # the first copy builds and uploads
        if "FULL TURBO" not in out and "1 cached" not in out:
            return f"turbo: no remote hit ({out.strip()[-160:]})"
        walls.append(wall)
    tags = sorted((server.storage / "turbo-bench").glob("*.tag"))
    verified = bool(tags) and all(
        tag_matches(b"bench-key", t.stem, "", t.with_suffix("").read_bytes(), t.read_text())
        for t in tags
    )
    return f"turbo remote hit: {ms(walls)} (its x-artifact-tag verifies with ggen's: {verified})"


PARTS: dict[str, Callable[[Path, int], list[Row]]] = {
    "parallel": bench_parallel,
    "cache": bench_cache,
    "remote": bench_remote,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument(
        "--only",
        choices=sorted(PARTS),
        action="append",
        help="measure only this part (repeatable; default: all)",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as one JSON document")
    args = parser.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-lifecycle-") as tmp:
        work = Path(tmp)
        rows: list[Row] = []
        for name in args.only or PARTS:
            if not args.json:
                print(f"  ... measuring {name}", file=sys.stderr)
            rows += PARTS[name](work, args.repeat)
    load = (load_before + os.getloadavg()[0]) / 2
    if args.json:
        report = {
            "date": started,
            "repeat": args.repeat,
            "cpus": os.cpu_count(),
            "load_average_1m": round(load, 2),
            "rows": [vars(row) for row in rows],
        }
        print(json.dumps(report, indent=2))
        return
    width = max(len(r.measure) for r in rows)
    print(
        f"ggen lifecycle benchmark, {started} (median of {args.repeat}; {os.cpu_count()} CPUs; "
        f"1-minute load average {load:.1f} while it ran: other work disturbs wall times)"
    )
    print(f"{'measure':<{width}}  {'ggen lifecycle':>15}  reference")
    print(f"{'-' * width}  {'-' * 15}  {'-' * 30}")
    for row in rows:
        print(f"{row.measure:<{width}}  {row.value:>15}  {row.reference}")


if __name__ == "__main__":
    main()
