"""Multi-step scenarios: a builder, a runner and ``*.scenario.toml`` files (the repeat check,
which their plugin also turns on, is :mod:`pytest_cleanroom.repeat`).

``pytest_cleanroom.scenario`` is the builder function alone; this package holds the rest.
Importing it is cheap; names are loaded on first use.
"""

from __future__ import annotations

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
