"""make.toml is validated (pydantic) once per content: later loads of the same bytes reuse it,
a changed file is validated again with the same error messages, a bad cache entry is ignored."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ggen_lifecycle.config import VALIDATED_DIR, load_project
from ggen_lifecycle.errors import ConfigError

from .helpers import write_project

GOOD = """
[workspace.app]
path = "app"
[lifecycle.build]
command = "make"
inputs = ["src/**"]
timeout = 5
env = { DEBUG = true, LEVEL = 3 }
[lifecycle.build.cleanroom]
policy = { level = "strict" }
[hooks]
before_build = "echo go"
[readiness.thresholds.production]
min_score = 90
"""
WORKSPACE = """
[lifecycle.test]
commands = ["pytest", "ruff check"]
"""

# Loads the project in a fresh interpreter and says whether pydantic was imported to do it.
PROBE = (
    "import sys; from ggen_lifecycle.config import load_project; p = load_project(sys.argv[1]); "
    "print('pydantic' in sys.modules, p.spec.lifecycle['build'].timeout)"
)


def _project(root: Path) -> Path:
    return write_project(root, GOOD, {"app/make.toml": WORKSPACE, "app/src/a.txt": "a"})


def _load_in_child(root: Path) -> tuple[bool, str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(root)], capture_output=True, text=True, check=True
    )
    imported, timeout = done.stdout.split()
    return imported == "True", timeout


def test_without_a_ggen_directory_nothing_is_written(tmp_path: Path) -> None:
    root = _project(tmp_path)
    load_project(root)
    assert not (root / ".ggen").exists()


def test_the_same_bytes_are_not_validated_twice(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / ".ggen").mkdir()
    assert _load_in_child(root) == (True, "5.0")  # first load validates
    assert len(list((root / VALIDATED_DIR).glob("*.json"))) == 2  # root and workspace file
    assert _load_in_child(root) == (False, "5.0")  # then pydantic is not even imported


def test_cached_and_validated_loads_give_the_same_project(tmp_path: Path) -> None:
    root = _project(tmp_path)
    fresh = load_project(root)
    (root / ".ggen").mkdir()
    load_project(root)
    cached = load_project(root)
    for project in (fresh, cached):
        build = project.spec.lifecycle["build"]
        assert build.command_list() == ["make"]
        assert build.cache_enabled
        assert build.cleanroom.policy == {"level": "strict"}
        assert project.declared_env(None, build, None) == {"DEBUG": "true", "LEVEL": "3"}
        assert project.spec.readiness.thresholds["production"].min_score == 90.0
        assert project.hooks() == {"before_build": ["echo go"]}
        assert project.workspace_files["app"][1].lifecycle["test"].command_list() == [
            "pytest",
            "ruff check",
        ]
    assert repr(fresh.spec) == repr(cached.spec)


def test_a_changed_file_is_validated_again_with_the_same_errors(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / ".ggen").mkdir()
    load_project(root)
    (root / "make.toml").write_text(GOOD.replace('command = "make"', 'comand = "make"'))
    with pytest.raises(ConfigError) as info:
        load_project(root)
    assert "unknown key 'comand' in [lifecycle.build]; did you mean 'command'?" in str(info.value)
    assert info.value.line == 5
    (root / "make.toml").write_text(GOOD + "[broken\n")
    with pytest.raises(ConfigError, match="malformed TOML") as info:
        load_project(root)
    assert info.value.line == GOOD.count("\n") + 1


def test_a_workspace_file_with_root_tables_is_refused_every_time(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / ".ggen").mkdir()
    (root / "app" / "make.toml").write_text(WORKSPACE + '[hooks]\nbefore_all = "x"\n')
    for _ in range(2):
        with pytest.raises(ConfigError, match=r"\[hooks\] belongs in the root make.toml"):
            load_project(root)
    assert (
        not (root / VALIDATED_DIR).exists() or len(list((root / VALIDATED_DIR).glob("*.json"))) == 1
    )  # only the root file passed


@pytest.mark.parametrize("damage", ["not json", '{"project": 1}', "[]", ""])
def test_a_damaged_cache_entry_is_ignored(tmp_path: Path, damage: str) -> None:
    root = _project(tmp_path)
    (root / ".ggen").mkdir()
    load_project(root)
    for entry in (root / VALIDATED_DIR).glob("*.json"):
        entry.write_text(damage)
    project = load_project(root)
    assert project.spec.lifecycle["build"].timeout == 5.0
    assert project.workspace_files["app"][1].lifecycle["test"].commands == ["pytest", "ruff check"]
    # and the entries were rewritten whole
    for entry in (root / VALIDATED_DIR).glob("*.json"):
        assert isinstance(json.loads(entry.read_text()), dict)


@pytest.mark.parametrize(
    "name",
    [
        "ProjectInfo",
        "WorkspaceSpec",
        "CleanroomSpec",
        "PhaseSpec",
        "Thresholds",
        "ReadinessSpec",
        "CacheSpec",
        "MakeToml",
        "WorkspaceMakeToml",
    ],
)
def test_plain_model_and_schema_have_the_same_keys_and_defaults(name: str) -> None:
    """model.py (what the runner reads) and schema.py (what validates) must not drift apart."""
    import dataclasses

    from ggen_lifecycle import model, schema

    plain, checked = getattr(model, name), getattr(schema, name)
    names = [f.name for f in dataclasses.fields(plain) if f.name != "warnings"]  # not a key
    assert names == list(checked.model_fields)
    if name != "WorkspaceSpec":  # the one with a required key
        plain_defaults = dataclasses.asdict(plain())
        plain_defaults.pop("warnings", None)
        assert plain_defaults == checked().model_dump()
