"""Checks of ``[validation.ENV]`` made when make.toml is loaded: every name it uses exists, its
policy is at least as isolated as ``strict``; each problem names its line and the fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pytest_cleanroom.config_errors import positions

from ..errors import ConfigError
from ..model import STANDARD_PHASES
from .policy import PolicyFloorError, production_policy
from .steps import DEFAULT_STEP_PHASES, step_names, verified_requirements

if TYPE_CHECKING:
    from ..config import Project
    from ..model import ProductionValidationSpec

Report = Callable[[ConfigError], None]


def check_validation(project: Project, add: Report) -> None:
    """Report (through ``add``) every problem of every ``[validation.ENV]`` table."""
    for environment, spec in project.spec.validation.items():
        _Checker(project, environment, spec, add).run()


class _Checker:
    def __init__(
        self, project: Project, environment: str, spec: ProductionValidationSpec, add: Report
    ) -> None:
        self.project, self.environment, self.spec, self.add = project, environment, spec, add
        self.table = f"[validation.{environment}]"

    def problem(self, message: str, *key: str, value: str | None = None) -> None:
        loc = ("validation", self.environment, *key)
        text = self.project.text
        line = positions.locate_value(text, loc, value) if value else positions.locate(text, loc)
        self.add(ConfigError(f"{self.table} {message}", file=self.project.file, line=line))

    def run(self) -> None:
        self._steps()
        self._verifies()
        self._gate()
        self._policy()

    def _steps(self) -> None:
        from pytest_cleanroom.config_errors.suggest import did_you_mean

        declared = self.project.declared_phases()
        for name in self.spec.commands:
            if name in declared:
                self.problem(
                    f"commands.{name}: {name!r} is a phase already; name the step "
                    "differently or drop the command",
                    "commands",
                    name,
                )
        names = step_names(self.project, self.spec)
        if not names:
            self.problem(
                f"has no steps: none of the phases {', '.join(DEFAULT_STEP_PHASES)} is"
                ' declared; list the steps: steps = ["build", "test"]'
            )
        known = [*declared, *self.spec.commands]
        for index, name in enumerate(names):
            if name in names[:index]:
                self.problem(f"steps lists {name!r} twice", "steps", value=name)
            elif name not in known:
                self.problem(
                    f"steps: unknown step {name!r}{did_you_mean(name, known)}; a step is a "
                    f"declared phase or an entry of [validation.{self.environment}.commands]",
                    "steps",
                    value=name,
                )
            elif name not in self.spec.commands and not self._has_commands(name):
                self.problem(
                    f"steps: phase {name!r} has no commands of its own; list the phases"
                    " it groups instead",
                    "steps",
                    value=name,
                )

    def _has_commands(self, phase: str) -> bool:
        for target in self.project.targets(phase):
            found = self.project.phase_spec(phase, target)
            if found is not None and found[0].command_list():
                return True
        return False

    def _verifies(self) -> None:
        from pytest_cleanroom.config_errors.suggest import did_you_mean

        names = step_names(self.project, self.spec)
        for requirement, step in verified_requirements(self.project, self.spec).items():
            if step not in names:
                self.problem(
                    f"verifies.{requirement}: {step!r} is not one of the steps"
                    f"{did_you_mean(step, names)}",
                    "verifies",
                    requirement,
                )

    def _gate(self) -> None:
        from pytest_cleanroom.config_errors.suggest import did_you_mean

        known = [*self.project.declared_phases(), *STANDARD_PHASES]
        for phase in self.spec.gate:
            if phase not in known:
                self.problem(
                    f"gate: unknown phase {phase!r}{did_you_mean(phase, known)}",
                    "gate",
                    value=phase,
                )

    def _policy(self) -> None:
        try:
            production_policy(self.spec.policy)
        except PolicyFloorError as exc:
            self.problem(f"policy: {exc}", "policy")
