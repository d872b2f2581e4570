"""What test gpacks cost pytest's start-up: whole-process wall and CPU times of ``pytest --co``.

    .venv/bin/python benchmarks/bench_gpack_bundles.py [--runs 7]

Side by side, on the same machine and in one run: ``python3 -c pass``; a project without
``ggen.lock`` with the gpack-bundles sub-plugin loaded (inert) and blocked
(``-p no:cleanroom.gpack_bundles.plugin``); the example test gpack installed (lock read, tree
verified, fixture module registered, scenario collected); a large test gpack (200 scenario files,
4 MB of data to hash). Nothing is asserted; it prints a table of medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from process_timing import time_process

PYTEST = [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider"]
BLOCKED = ["-p", "no:cleanroom.gpack_bundles.plugin"]
OFF = "--no-cleanroom-gpacks"


def median_of(runs: int, cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    samples = [time_process(cmd, cwd, env) for _ in range(runs + 1)][1:]  # first: warms caches
    return statistics.median(s.wall_ms for s in samples), statistics.median(
        s.cpu_ms for s in samples
    )


STEPS = """
import sys, time
from pathlib import Path
t = [time.process_time()]
import pytest_cleanroom.policy  # pydantic: every run that sandboxes anything pays it
t.append(time.process_time())
from ggen_market.gpack_bundles.loader import load_bundles  # ggen_market
t.append(time.process_time())
bundles = load_bundles(Path(sys.argv[1]))  # read lock, hash trees, parse manifests
t.append(time.process_time())
from pytest_cleanroom.scenarios.files import load_scenario_file
for b in bundles:
    for path in b.scenarios:
        load_scenario_file(path)  # what collection adds per file
t.append(time.process_time())
print(" ".join(f"{(b - a) * 1000:.1f}" for a, b in zip(t, t[1:])))
"""


def steps(project: Path, runs: int, env: dict[str, str]) -> list[float]:
    """Median CPU ms of each loading step, measured inside fresh interpreters."""
    samples = []
    for _ in range(runs + 1):
        done = subprocess.run([sys.executable, "-c", STEPS, str(project)], env=env, check=True,
                              capture_output=True, text=True)  # fmt: skip
        samples.append([float(x) for x in done.stdout.split()])
    return [statistics.median(column) for column in zip(*samples[1:], strict=True)]


def ggen(*args: str, cwd: Path, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "ggen_cli", *args], cwd=cwd, env=env, check=True,
                   capture_output=True)  # fmt: skip


def large_pack(root: Path) -> Path:
    pack = root / "io.bench.large"
    (pack / "scenarios").mkdir(parents=True)
    (pack / "fixtures").mkdir()
    (pack / "data").mkdir()
    (pack / "gpack.toml").write_text(
        '[gpack]\nid = "io.bench.large"\nname = "large"\nversion = "1.0.0"\n'
        'description = "200 scenarios and 4 MB of data"\nggen_compat = "*"\n\n'
        '[cleanroom]\npolicy = "strict"\n\n[scenarios]\npatterns = ["scenarios/*.scenario.toml"]\n'
        '\n[fixtures]\npatterns = ["fixtures/*.py"]\n'
    )
    for i in range(200):
        (pack / "scenarios" / f"s{i:03}.scenario.toml").write_text(
            f'[scenario]\nname = "s{i:03}"\n\n[[steps]]\nname = "one"\nrun = "true"\n\n'
            '[[steps]]\nname = "two"\nrun = ["echo", "two"]\nexpect_stdout = "two"\n'
        )
    (pack / "fixtures" / "f.py").write_text(
        "import pytest\n\n@pytest.fixture\ndef large_value():\n    return 1\n"
    )
    for i in range(4):
        (pack / "data" / f"blob{i}.bin").write_bytes(os.urandom(1 << 20))
    return pack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="bench-gpack-") as tmp:
        base = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GGEN_", "PYTEST_"))}
        env.update(GGEN_CACHE_DIR=str(base / "cache"), GGEN_CONFIG=str(base / "none.toml"))
        plain = base / "plain"
        plain.mkdir()
        (plain / "test_a.py").write_text("def test_a():\n    pass\n")
        smoke = base / "smoke"
        shutil.copytree(plain, smoke)
        ggen("market", "add", "io.ggen.cleanroom.smoke", cwd=smoke, env=env)
        registry = base / "registry"
        large_pack(registry)
        ggen("market", "index", str(registry), cwd=base, env=env)
        large = base / "large"
        shutil.copytree(plain, large)
        ggen("market", "add", "io.bench.large", "--registry", str(registry), cwd=large, env=env)

        rows = [
            ("python3 -c pass", ["python3", "-c", "pass"], plain),
            ("pytest --co, no ggen.lock, sub-plugin blocked", [*PYTEST, *BLOCKED], plain),
            ("pytest --co, no ggen.lock (inert)", PYTEST, plain),
            ("pytest --co, example test gpack installed", PYTEST, smoke),
            ("pytest --co, example gpack, --no-cleanroom-gpacks", [*PYTEST, OFF], smoke),
            ("pytest --co, 200-scenario 4 MB test gpack", PYTEST, large),
        ]  # fmt: skip
        print(f"{'case':<52} {'wall ms':>9} {'cpu ms':>9}   (median of {runs})")
        for label, cmd, cwd in rows:
            elapsed, cpu = median_of(runs, cmd, cwd, env)
            print(f"{label:<52} {elapsed:>9.0f} {cpu:>9.0f}")
        print()
        print("CPU ms inside one interpreter (median):")
        print(f"{'pack':<28} {'pydantic':>9} {'ggen_market':>12} {'verify+find':>12} {'parse':>8}")
        for label, project in (("example test gpack", smoke), ("200 scenarios, 4 MB", large)):
            row = steps(project, runs, env)
            print(f"{label:<28} {row[0]:>9.1f} {row[1]:>12.1f} {row[2]:>12.1f} {row[3]:>8.1f}")


if __name__ == "__main__":
    main()
