"""The ``cleanroom`` fixture's Cleanroom: the engine's, with the command-line policy as a floor
and every result reported through the cleanroom hooks."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from ..engine import Cleanroom, Command
from ..errors import BackendUnavailableError
from ..policy import Policy
from ..result import RunResult
from ..workspace import Workspace
from . import floor as floors
from .options import MARKER
from .records import PENDING_RESULTS
from .settings import CleanroomSettings


class PytestCleanroom(Cleanroom):
    """A :class:`Cleanroom` whose ``run(policy=..., timeout=...)`` can tighten, never weaken,
    the command-line policy ``floor``; a refused weakening emits a CleanroomPolicyWarning."""

    def __init__(self, workspace: Workspace | str | Path, *, floor: Policy, **kwargs: Any) -> None:
        self.floor = floor
        super().__init__(workspace, **kwargs)

    def run(
        self,
        cmd: Command,
        *,
        policy: Policy | str | Mapping[str, Any] | None = None,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: str | bytes | None = None,
    ) -> RunResult:
        final, timeout, refused = floors.clamp_run(self.floor, policy, timeout)
        if refused:
            warnings.warn(floors.run_warning(self.floor, refused), stacklevel=2)
        return super().run(cmd, policy=final, timeout=timeout, env=env, cwd=cwd, stdin=stdin)

    def _replica_settings(self) -> dict[str, Any]:
        # Replays keep the floor: they obey the same rule as the test's own commands.
        return {**super()._replica_settings(), "floor": self.floor}


def open_cleanroom(
    item: pytest.Item, workspace: Workspace, settings: CleanroomSettings
) -> PytestCleanroom:
    """Build the test's cleanroom under its effective policy and wire up the hooks."""
    floor = settings.policy
    try:
        policy, weakened = floors.effective_policy(list(item.iter_markers(MARKER))[::-1], floor)
    except floors.MarkerError as exc:
        message = f"invalid @pytest.mark.{MARKER} on {item.nodeid}: {exc}"
        raise pytest.fail.Exception(message, pytrace=False) from None
    if weakened:
        item.warn(floors.marker_warning(item.nodeid, floor, weakened))
    try:
        room = PytestCleanroom(
            workspace, floor=floor, policy=policy, backend=settings.backend, seed=settings.seed
        )
    except BackendUnavailableError as exc:
        message = f"cleanroom backend {settings.backend!r} unavailable: {exc}"
        raise pytest.fail.Exception(message, pytrace=False) from None

    def report(result: RunResult) -> None:
        item.stash.setdefault(PENDING_RESULTS, []).append(result)
        item.ihook.pytest_cleanroom_result(item=item, result=result)

    # Listen first, so that commands run by pytest_cleanroom_created implementations are reported.
    room.add_listener(report)
    try:
        item.ihook.pytest_cleanroom_created(item=item, cleanroom=room)
    except BaseException:
        room.close()
        raise
    return room
