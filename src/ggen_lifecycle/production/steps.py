"""Which commands a production validation runs: ``[validation.ENV] steps`` resolved to phases (in
each workspace they run in) or to ``[validation.ENV.commands]`` entries, in the order listed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Project
    from ..model import ProductionValidationSpec

#: Declared phases that become the steps when ``steps`` is not given, in this order.
DEFAULT_STEP_PHASES: tuple[str, ...] = (
    "build",
    "lint",
    "test",
    "security",
    "audit",
    "benchmark",
    "bench",
    "compliance",
)
#: Requirement verified by a step of the same name when ``verifies`` does not say otherwise.
DEFAULT_VERIFIES: dict[str, str] = {"test": "tests"}


@dataclass(frozen=True)
class PlannedStep:
    """One step in one workspace: its commands, directory (relative to the project) and env."""

    name: str
    workspace: str | None
    commands: list[str]
    cwd: str
    env: dict[str, str]
    services: list[str] = field(default_factory=list)
    timeout: float | None = None

    @property
    def label(self) -> str:
        return f"{self.workspace}:{self.name}" if self.workspace else self.name


def step_names(project: Project, spec: ProductionValidationSpec) -> list[str]:
    """``steps`` as given, else the declared phases among :data:`DEFAULT_STEP_PHASES`."""
    if spec.steps is not None:
        return list(spec.steps)
    declared = project.declared_phases()
    return [p for p in DEFAULT_STEP_PHASES if p in declared]


def verified_requirements(project: Project, spec: ProductionValidationSpec) -> dict[str, str]:
    """Requirement id -> the step whose passing completes it."""
    names = step_names(project, spec)
    found = {req: step for step, req in DEFAULT_VERIFIES.items() if step in names}
    found.update(spec.verifies)
    return found


def plan_steps(
    project: Project, spec: ProductionValidationSpec, environment: str
) -> list[PlannedStep]:
    """Every step in every workspace it runs in, in order."""
    planned: list[PlannedStep] = []
    for name in step_names(project, spec):
        if name in spec.commands:
            env = project.declared_env(None, None, environment)
            planned.append(PlannedStep(name, None, list(spec.commands[name]), ".", env))
            continue
        for target in project.targets(name):
            found = project.phase_spec(name, target)
            assert found is not None  # checked when make.toml was loaded
            phase = found[0]
            directory = project.workspace_dir(target) / (phase.cwd or "")
            planned.append(
                PlannedStep(
                    name=name,
                    workspace=target,
                    commands=project.phase_commands(name, target, phase, environment),
                    cwd=directory.relative_to(project.root).as_posix(),
                    env=project.declared_env(target, phase, environment),
                    services=list(phase.cleanroom.services),
                    timeout=phase.timeout,
                )
            )
    return planned


def output_globs(project: Project) -> list[str]:
    """Every phase's declared ``outputs``, as globs relative to the project root: what a build
    produces is not an input of the validation."""
    globs: list[str] = []
    for name in project.declared_phases():
        for target in project.targets(name):
            found = project.phase_spec(name, target)
            if found is None:
                continue
            directory = project.workspace_dir(target) / (found[0].cwd or "")
            prefix = directory.relative_to(project.root).as_posix()
            prefix = "" if prefix == "." else prefix + "/"
            globs.extend(prefix + pattern.removeprefix("!") for pattern in found[0].outputs)
    return globs
