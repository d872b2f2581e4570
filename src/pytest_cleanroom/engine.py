"""The cleanroom engine's public face: :class:`Cleanroom`, :func:`run`, :func:`run_with_policy`.

(Skeleton: the engine helper fills in the bodies; the signatures are the contract.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .policy import Policy
from .result import RunResult
from .workspace import Workspace

if TYPE_CHECKING:
    from .scenario.model import Scenario
    from .scenario.result import ScenarioResult

Command = str | Sequence[str]
RunListener = Callable[[RunResult], None]


class Cleanroom:
    """Runs commands in one workspace under a policy, and remembers every result."""

    def __init__(
        self,
        workspace: Workspace | str | Path,
        *,
        policy: Policy | str | None = None,
        backend: str = "auto",
        seed: int | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        raise NotImplementedError

    def run(
        self,
        cmd: Command,
        *,
        policy: Policy | str | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: str | bytes | None = None,
    ) -> RunResult:
        """Run ``cmd`` (argv list, or a string for ``sh -c``) in the sandbox."""
        raise NotImplementedError

    def expose_service(self, name: str, socket_dir: Path, env: Mapping[str, str]) -> None:
        """Bind a service's unix-socket directory into the sandbox if the policy allows ``name``."""
        raise NotImplementedError

    def add_listener(self, listener: RunListener) -> None:
        """Call ``listener`` with every RunResult (reports, attestations, repeat checks)."""
        raise NotImplementedError

    def run_scenario(self, scenario: Scenario) -> ScenarioResult:
        """Run a multi-step scenario in this cleanroom (see :mod:`pytest_cleanroom.scenario`)."""
        from .scenario.runner import run_scenario

        return run_scenario(self, scenario)


def run(cmd: Command, **kwargs: Any) -> RunResult:
    """Run one command in a fresh temporary workspace under the ``standard`` policy."""
    raise NotImplementedError


def run_with_policy(policy: Policy | str, cmd: Command, **kwargs: Any) -> RunResult:
    """Run one command in a fresh temporary workspace under ``policy``."""
    raise NotImplementedError
