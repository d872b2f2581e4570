"""Benchmark of ggen_market: whole-process wall times, side by side with `python3 -c pass`.

    .venv/bin/python benchmarks/bench_market.py [--runs 7]

Goals on the reference machine (2 cores): search over a 10,000-package index < 300 ms; add of a
1 MB gpack from a local registry, verified, < 300 ms; template generate from a 1,000-triple graph
with two SPARQL queries < 1 s. Nothing here is asserted; it prints a table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from process_timing import CHILD_ENV, time_process

GGEN = Path(sys.executable).with_name("ggen")
GGEN_CMD = [str(GGEN)] if GGEN.exists() else [sys.executable, "-m", "ggen_cli"]


Prepare = Callable[[int], tuple[list[str], Path]]


def measure(runs: int, prepare: Prepare, env: dict[str, str]) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for i in range(runs + 1):  # the first run warms caches (and writes .pyc files); dropped
        cmd, cwd = prepare(i)
        timing = time_process(cmd, cwd, env)
        elapsed, cpu = timing.wall_ms, timing.cpu_ms
        if i:
            walls.append(elapsed)
            cpus.append(cpu)
    return walls, cpus


def big_index(root: Path, count: int) -> None:
    words = ["cli", "web", "rust", "python", "sql", "graph", "api", "docs", "test", "ml", "k8s"]
    packs = {}
    for i in range(count):
        a, b = words[i % len(words)], words[(i * 7) % len(words)]
        pid = f"io.bench.{a}.{b}-{i}"
        packs[pid] = {
            "name": f"{a.title()} {b} generator {i}",
            "description": f"Generates {a} code for {b} projects, variant {i}.",
            "category": a,
            "tags": [a, b],
            "keywords": [f"{a} {b}", "generator"],
            "license": "MIT",
            "authors": ["bench"],
            "downloads": (i * 7919) % 100_000,
            "versions": {
                f"1.{j}.0": {
                    "archive": f"archives/{pid}-1.{j}.0.tar.gz",
                    "sha256": hashlib.sha256(f"{pid}{j}".encode()).hexdigest(),
                    "size": 1000,
                    "dependencies": {},
                    "ggen_compat": "*",
                }
                for j in range(2)
            },
        }
    root.mkdir(parents=True)
    (root / "index.json").write_text(json.dumps({"format": 1, "updated": "", "packs": packs}))


def big_gpack(root: Path) -> None:
    path = root / "big"
    (path / "data").mkdir(parents=True)
    (path / "gpack.toml").write_text(
        '[gpack]\nid = "io.bench.big"\nname = "big"\nversion = "1.0.0"\n'
        'description = "one megabyte of data"\n'
    )
    # Incompressible, so the archive itself is about 1 MB.
    (path / "data" / "blob.bin").write_bytes(os.urandom(1024 * 1024))


def graph_gpack(root: Path) -> None:
    path = root / "graph"
    for sub in ("templates", "rdf", "queries"):
        (path / sub).mkdir(parents=True)
    (path / "gpack.toml").write_text(
        '[gpack]\nid = "io.bench.graph"\nname = "graph"\nversion = "1.0.0"\n\n'
        '[rdf.prefixes]\nex = "https://example.org/"\n'
    )
    lines = ["@prefix ex: <https://example.org/> ."]
    for i in range(250):  # 4 triples each: 1,000 triples
        lines.append(
            f'ex:e{i} a ex:Entity ; ex:name "entity{i}" ; ex:size {i} ; ex:group ex:g{i % 10} .'
        )
    (path / "rdf" / "model.ttl").write_text("\n".join(lines) + "\n")
    (path / "queries" / "entities.rq").write_text(
        "SELECT ?e ?name ?size WHERE { ?e a ex:Entity ; ex:name ?name ; ex:size ?size }"
        " ORDER BY ?size"
    )
    (path / "queries" / "groups.rq").write_text(
        "SELECT ?g (COUNT(?e) AS ?n) WHERE { ?e ex:group ?g } GROUP BY ?g"
    )
    (path / "templates" / "model.py.tmpl").write_text(
        "---\nto: model.py\nrdf: [rdf/model.ttl]\nsparql:\n  entities: queries/entities.rq\n"
        "  groups: queries/groups.rq\n---\n"
        "ENTITIES = {\n{% for e in sparql.entities %}    {{ e.name | pyrepr }}: {{ e.size }},\n"
        "{% endfor %}}\nGROUPS = {\n{% for g in sparql.groups %}"
        "    {{ g.g | local_name | pyrepr }}: {{ g.n }},\n{% endfor %}}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-market-"))
    env = {k: v for k, v in CHILD_ENV.items() if not k.startswith("GGEN_")}
    env.update(GGEN_CACHE_DIR=str(tmp / "cache"), GGEN_CONFIG=str(tmp / "none.toml"))
    try:
        big_index(tmp / "index10k", 10_000)
        registry = tmp / "registry"
        big_gpack(registry)
        graph_gpack(registry)
        subprocess.run([*GGEN_CMD, "market", "index", str(registry)], check=True, env=env,
                       capture_output=True)  # fmt: skip
        graph_project = tmp / "graph-project"
        graph_project.mkdir()
        subprocess.run([*GGEN_CMD, "market", "add", "io.bench.graph", "--registry", str(registry)],
                       cwd=graph_project, check=True, env=env, capture_output=True)  # fmt: skip

        def baseline(_: int) -> tuple[list[str], Path]:
            return [sys.executable, "-c", "pass"], tmp

        def search(_: int) -> tuple[list[str], Path]:
            # 1,818 of the 10,000 packs match both words: ranked, the best 20 printed.
            cmd = [*GGEN_CMD, "market", "search", "python generator", "--registry",
                   str(tmp / "index10k"), "--json"]  # fmt: skip
            return cmd, tmp

        def add(i: int) -> tuple[list[str], Path]:
            project = tmp / f"add-{i}"
            project.mkdir()
            return [
                *GGEN_CMD,
                "market",
                "add",
                "io.bench.big",
                "--registry",
                str(registry),
            ], project

        def generate(i: int) -> tuple[list[str], Path]:
            out = tmp / f"gen-{i}"
            cmd = [*GGEN_CMD, "template", "generate", "io.bench.graph:model.py", "--out", str(out)]
            return cmd, graph_project

        rows = [
            ("python3 -c pass", measure(args.runs, baseline, env), None),
            ("market search (10,000 packs)", measure(args.runs, search, env), 300.0),
            ("market add (1 MB gpack, verified)", measure(args.runs, add, env), 300.0),
            (
                "template generate (1,000 triples, 2 queries)",
                measure(args.runs, generate, env),
                1000.0,
            ),
        ]
        base = statistics.median(rows[0][1][0])
        print(
            f"{'task':<46} {'wall median':>11} {'wall min':>9} {'cpu median':>11}"
            f" {'wall - start-up':>15} {'goal':>8}"
        )
        for name, (walls, cpus), goal in rows:
            median = statistics.median(walls)
            verdict = "" if goal is None else ("ok" if median < goal else "MISSED")
            goal_text = "" if goal is None else f"<{goal:.0f} ms"
            print(
                f"{name:<46} {median:>8.0f} ms {min(walls):>6.0f} ms"
                f" {statistics.median(cpus):>8.0f} ms {median - base:>12.0f} ms"
                f" {goal_text:>8} {verdict}"
            )
        load = os.getloadavg()[0]
        print(f"(load average {load:.1f} on {os.cpu_count()} CPUs; wall times grow with load)")
        print(f"({args.runs} runs each after one warm-up; python: {sys.version.split()[0]})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
