"""The real wheel: built from this checkout, installed apart, its embedded registry answering.

pyproject.toml force-includes example_gpacks/ as ggen_market/_embedded/example_gpacks. This
builds the wheel with the project's own build backend (hatchling, offline: no build isolation,
no index), checks the example gpacks are inside, installs it with ``pip --target`` into a private
directory placed first on PYTHONPATH, and runs the installed ``ggen`` against the embedded
registry from a directory with no source checkout around it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import require

from .conftest import REPO

EMBEDDED = "ggen_market/_embedded/example_gpacks"
EXAMPLE_IDS = {
    "io.ggen.cleanroom.smoke",
    "io.ggen.python.cli-from-ontology",
    "io.ggen.python.project-basics",
}


def _run(
    *cmd: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, f"{cmd}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the built wheel, the directory it is installed in)."""
    require(importlib.util.find_spec("pip") is not None, "pip in this interpreter")
    require(
        importlib.util.find_spec("hatchling") is not None,
        "hatchling, the build backend (pip install -e '.[dev]')",
    )
    base = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run(*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", base / "dist",
         REPO)  # fmt: skip
    wheels = list((base / "dist").glob("pytest_cleanroom-*.whl"))
    assert len(wheels) == 1, wheels
    site = base / "site"
    _run(*pip, "install", "--no-deps", "--no-index", "--target", site, wheels[0])
    return wheels[0], site


def test_the_wheel_carries_every_example_gpack_file(installed: tuple[Path, Path]) -> None:
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    examples = REPO / "example_gpacks"
    expected = {
        f"{EMBEDDED}/{p.relative_to(examples).as_posix()}"
        for p in examples.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert len(expected) >= 10
    assert expected <= names, sorted(expected - names)
    assert {f"{EMBEDDED}/{d.name}/gpack.toml" for d in examples.iterdir()} <= names
    assert not any(n.endswith(".pyc") for n in names)
    assert "ggen_market/cli.py" in names
    assert "ggen_market/py.typed" in names


def test_the_installed_ggen_answers_from_its_embedded_registry(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, site = installed
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GGEN_", "PYTHON"))}
    env.update(
        PYTHONPATH=str(site),
        PYTHONDONTWRITEBYTECODE="1",
        GGEN_CACHE_DIR=str(tmp_path / "cache"),
        GGEN_CONFIG=str(tmp_path / "no-config.toml"),
    )
    work = tmp_path / "work"  # no checkout around: only the wheel's copy can answer
    work.mkdir()
    where = _run(sys.executable, "-c", "import ggen_market.config as c, ggen_cli, pytest_cleanroom;"
                 "print(c.__file__, ggen_cli.__file__, pytest_cleanroom.__file__,"
                 " c.embedded_gpacks_dir())", env=env, cwd=work)  # fmt: skip
    *modules, embedded = where.stdout.split()
    assert all(m.startswith(str(site)) for m in modules), modules
    assert embedded == str(site / EMBEDDED)
    ggen = site / "bin" / "ggen"  # the console script the wheel declares
    assert ggen.is_file()
    found = _run(ggen, "market", "search", "smoke", "--json", env=env, cwd=work)
    assert [r["id"] for r in json.loads(found.stdout)["results"]] == ["io.ggen.cleanroom.smoke"]
    listed = _run(ggen, "market", "list", "--available", "--json", env=env, cwd=work)
    available = json.loads(listed.stdout)["available"]
    assert {p["id"] for p in available} == EXAMPLE_IDS
    assert {p["registry"] for p in available} == {"embedded:"}
    # The shipped examples are complete gpacks: one installs, verified, from the installed copy.
    _run(ggen, "market", "add", "io.ggen.python.project-basics", "--json", env=env, cwd=work)
    verified = _run(ggen, "market", "verify", "--json", env=env, cwd=work)
    assert [p["status"] for p in json.loads(verified.stdout)["packages"]] == ["ok"]
