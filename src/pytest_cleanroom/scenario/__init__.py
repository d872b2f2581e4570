"""Multi-step scenarios: a builder, a runner, ``*.scenario.toml`` files and the repeat check.

Importing this package is cheap; names are loaded on first use.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

__all__ = [
    "Scenario",
    "ScenarioError",
    "ScenarioFailedError",
    "ScenarioFileError",
    "ScenarioResult",
    "Step",
    "StepOutcome",
    "load_scenario_file",
    "run_scenario",
    "scenario",
    "step",
]

_LAZY = {
    "Scenario": "model",
    "ScenarioError": "model",
    "Step": "model",
    "scenario": "model",
    "step": "model",
    "ScenarioResult": "result",
    "ScenarioFailedError": "result",
    "StepOutcome": "result",
    "run_scenario": "runner",
    "load_scenario_file": "files",
    "ScenarioFileError": "files",
}

if TYPE_CHECKING:
    from .files import ScenarioFileError, load_scenario_file
    from .model import Scenario, ScenarioError, Step, scenario, step
    from .result import ScenarioFailedError, ScenarioResult, StepOutcome
    from .runner import run_scenario


__getattr__ = lazy_getattr(__name__, _LAZY)


class _CallableModule(types.ModuleType):
    """``pytest_cleanroom.scenario`` is both this package and the builder function: once the
    package is imported, ``from pytest_cleanroom import scenario`` yields the package, so calling
    it must build a scenario just as the function does."""

    def __call__(self, name: str) -> Scenario:
        from .model import scenario

        return scenario(name)


sys.modules[__name__].__class__ = _CallableModule
