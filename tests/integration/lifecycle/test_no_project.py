"""Every ``ggen lifecycle`` command run outside a project says where it looked and what to do,
without naming a make.toml that does not exist or a path only a source checkout has."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import GGEN

COMMANDS = [
    ["list"],
    ["list", "--json"],
    ["run", "build"],
    ["run", "build", "--dry-run"],
    ["pipeline", "build", "test"],
    ["show", "build"],
    ["graph"],
    ["state"],
    ["clean"],
    ["readiness"],
    ["placeholders"],
    ["validate"],
]


def _outside_any_project(tmp_path: Path) -> Path:
    here = tmp_path / "not-a-project"
    here.mkdir()
    above = [d for d in (here, *here.parents) if (d / "make.toml").exists()]
    assert not above, f"a make.toml above the test directory spoils this test: {above}"
    return here


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_outside_a_project(tmp_path: Path, args: list[str]) -> None:
    here = _outside_any_project(tmp_path)
    done = subprocess.run(
        [*GGEN, *args], cwd=here, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2, done.stderr
    line = done.stderr.strip().splitlines()[-1]
    assert line.startswith(f"ggen lifecycle: error: no make.toml in {here} or any parent"), line
    assert f"{here}/make.toml:" not in done.stderr  # no location prefix for a missing file
    assert "-C DIR" in line
    assert f"create {here}/make.toml" in line
    assert "docs/" not in done.stderr
    if "--json" in args:
        error = json.loads(done.stdout)["error"]
        assert error["type"] == "ConfigError"
        assert error["file"] is None


def test_a_project_directory_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    done = subprocess.run(
        [*GGEN, "-C", str(missing), "list"], capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"ggen lifecycle: error: no such project directory or make.toml: {missing}"
    )
