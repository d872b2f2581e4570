"""Test gpacks: the ``[cleanroom]``, ``[fixtures]`` and ``[scenarios]`` sections.

A test gpack ships ``*.scenario.toml`` files and pytest fixture modules. They are validated when
the gpack is packed, indexed or installed; :func:`installed_test_packs` is what pytest-cleanroom's
loader calls to find them through ``ggen.lock`` once ``ggen market add`` installed them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .lockfile import LOCK_NAME, read_lock
from .manifest import CleanroomSection, Manifest, load_manifest, matching_files
from .validation import format_validation_error, read_toml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScenarioHeader(_Strict):
    """``[scenario]``."""

    name: str = Field(min_length=1)
    description: str = ""
    policy: Literal["permissive", "standard", "strict", "locked"] = "standard"
    timeout: float | None = Field(None, gt=0)
    services: list[Literal["postgres", "redis"]] = []
    tags: list[str] = []


class ScenarioStep(_Strict):
    """One ``[[steps]]`` (or ``[[rollback]]``) entry."""

    name: str = Field(min_length=1)
    run: str | list[str]
    env: dict[str, str] = {}
    timeout: float | None = Field(None, gt=0)
    expect_exit: int = 0
    expect_stdout: str | None = None
    expect_stderr: str | None = None
    expect_files: list[str] | dict[str, str] = []
    continue_on_failure: bool = False
    concurrent: str | None = None

    @field_validator("run")
    @classmethod
    def _run(cls, value: str | list[str]) -> str | list[str]:
        if not value or (isinstance(value, list) and not all(value)):
            raise ValueError("must be a non-empty command (a string or a list of arguments)")
        return value


class ScenarioFile(_Strict):
    """A ``*.scenario.toml`` file as a test gpack ships it."""

    scenario: ScenarioHeader
    steps: list[ScenarioStep] = Field(min_length=1)
    rollback: list[ScenarioStep] = []
    matrix: dict[str, list[str | int | float | bool]] = {}


def load_scenario(path: Path) -> ScenarioFile:
    """Parse and validate one scenario file; errors name the file and the key."""
    try:
        return ScenarioFile.model_validate(read_toml(path))
    except ValidationError as exc:
        raise format_validation_error(
            path, ScenarioFile, exc, array_tables=("steps", "rollback")
        ) from None


def check_test_sections(root: Path, manifest: Manifest) -> list[Path]:
    """Validate every scenario file of the gpack at ``root``; returns the scenario paths."""
    if manifest.scenarios is None:
        return []
    paths = matching_files(root, manifest.scenarios.patterns)
    for path in paths:
        load_scenario(path)
    return paths


@dataclass(frozen=True)
class InstalledTestPack:
    """A test gpack installed in a project: where its scenarios and fixtures are."""

    id: str
    version: str
    root: Path
    cleanroom: CleanroomSection
    scenarios: tuple[Path, ...]
    fixtures: tuple[Path, ...]


def installed_test_packs(project: Path) -> list[InstalledTestPack]:
    """Test gpacks pinned in ``project``'s ``ggen.lock``, sorted by id (empty without a lock)."""
    lock = read_lock(project / LOCK_NAME)
    if lock is None:
        return []
    found: list[InstalledTestPack] = []
    for pid in sorted(lock.packages):
        pkg = lock.packages[pid]
        if not pkg.test_pack:
            continue
        root = pkg.install_dir(project)
        manifest = load_manifest(root)
        found.append(
            InstalledTestPack(
                id=pid,
                version=pkg.version,
                root=root,
                cleanroom=manifest.cleanroom or CleanroomSection(),
                scenarios=tuple(check_test_sections(root, manifest)),
                fixtures=tuple(
                    matching_files(root, manifest.fixtures.patterns) if manifest.fixtures else ()
                ),
            )
        )
    return found
