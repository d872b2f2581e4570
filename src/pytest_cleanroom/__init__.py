"""pytest-cleanroom: hermetic, policy-enforced test environments.

Importing this package is cheap: the engine's names are loaded on first use.
"""

from __future__ import annotations

from ._lazy import lazy_getattr

__version__ = "0.1.0"

TYPE_CHECKING = False  # typing is not imported: ggen's cache-hit path loads this package

__all__ = [
    "Cleanroom",
    "CleanroomAssertionError",
    "CleanroomError",
    "Policy",
    "RunResult",
    "Scenario",
    "ScenarioResult",
    "Workspace",
    "__version__",
    "run",
    "run_with_policy",
    "scenario",
]

_LAZY = {
    "Cleanroom": "engine",
    "run": "engine",
    "run_with_policy": "engine",
    "Policy": "policy",
    "RunResult": "result",
    "CleanroomAssertionError": "result",
    "CleanroomError": "errors",
    "Workspace": "workspace",
    "scenario": "scenarios.model",
    "Scenario": "scenarios.model",
    "ScenarioResult": "scenarios.result",
}

if TYPE_CHECKING:
    from .engine import Cleanroom, run, run_with_policy
    from .errors import CleanroomError
    from .policy import Policy
    from .result import CleanroomAssertionError, RunResult
    from .scenarios.model import Scenario, scenario
    from .scenarios.result import ScenarioResult
    from .workspace import Workspace


__getattr__ = lazy_getattr(__name__, _LAZY)
