"""What a real ``ggen market search`` / ``add`` process loads: only what the command needs.

Start-up time is most of these commands' cost (see benchmarks/bench_market.py), so a module
imported eagerly again shows up here, by name, before it shows up in the benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ggen_env

from .conftest import ggen, write_gpack

# Runs ggen's entry point, then writes the names of every module loaded to argv[1].
RUN_AND_LIST = """
import json, sys
out = sys.argv.pop(1)
from ggen_cli.__main__ import main
code = main(sys.argv[1:])
with open(out, "w") as f:
    json.dump(sorted(sys.modules), f)
sys.exit(code)
"""

NEVER = {"httpx", "jinja2", "rdflib", "yaml", "filelock"}  # no market command here needs them


def _modules(tmp_path: Path, cwd: Path, *args: str) -> set[str]:
    listing = tmp_path / "modules.json"
    env = ggen_env(tmp_path)
    command = [sys.executable, "-c", RUN_AND_LIST, str(listing), *args]
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    names = set(json.loads(listing.read_text()))
    return names | {name.split(".")[0] for name in names}


def test_search_and_add_load_only_what_they_use(tmp_path: Path) -> None:
    registry = tmp_path / "registry"
    write_gpack(registry, "io.lean.pack", "1.0.0")
    assert ggen("market", "index", str(registry)).exit_code == 0
    project = tmp_path / "project"
    project.mkdir()
    search = ("market", "search", "lean", "--registry", str(registry), "--json")
    _modules(tmp_path, project, *search)  # the first search fills the parsed-index cache
    searched = _modules(tmp_path, project, *search)
    # The index is checked without pydantic, and the latest versions were worked out when the
    # index was parsed (no semver); nothing of installing is loaded.
    market = {"ggen_market.install", "ggen_market.manifest", "ggen_market.versions"}
    assert searched.isdisjoint(NEVER | {"pydantic", "semver"} | market)
    assert "ggen_market.search" in searched
    added = _modules(
        tmp_path, project, "market", "add", "io.lean.pack", "--registry", str(registry)
    )
    assert "pydantic" in added  # the downloaded gpack.toml is untrusted: validated by the model
    assert added.isdisjoint(NEVER | {"click"})  # ggen_market.add_command parses without click
    # A plain gpack.toml: the models of the test sections are not built.
    assert "ggen_market.test_sections" not in added
    assert (project / "ggen.lock").is_file()
