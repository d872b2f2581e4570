"""A backend serving a whole run is checked once per policy, not once per cleanroom."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.backends import fit_policy
from pytest_cleanroom.backends.base import Backend, CommandSpec
from pytest_cleanroom.errors import BackendUnavailableError
from pytest_cleanroom.result import RunResult


class Counting(Backend):
    """Counts its checks and the launchers it is asked to make ready; runs nothing."""

    name = "counting"

    def __init__(self, refuse: bool = False) -> None:
        self.checks: list[str] = []
        self.ahead = 0
        self.refuse = refuse

    def check(self, policy: Policy) -> None:
        self.checks.append(policy.name)
        if self.refuse:
            raise BackendUnavailableError("refused")
        self.prepare_ahead()  # as the local backends' checks do

    def prepare_ahead(self) -> None:
        self.ahead += 1

    def run(self, spec: CommandSpec) -> RunResult:
        raise AssertionError("not run")


class Reusable(Counting):
    reusable = True


def test_a_reusable_backend_is_checked_once_per_policy(tmp_path: Path) -> None:
    backend = Reusable()
    for index in range(3):
        Cleanroom(tmp_path / str(index), policy="locked", backend=backend).close()
    Cleanroom(tmp_path / "other", policy="standard", backend=backend).close()
    assert backend.checks == ["locked", "standard"]
    assert backend.ahead == 4  # each cleanroom still has it get ready


def test_a_backend_made_per_cleanroom_is_checked_each_time(tmp_path: Path) -> None:
    backend = Counting()
    for index in range(3):
        Cleanroom(tmp_path / str(index), policy="locked", backend=backend).close()
    assert backend.checks == ["locked"] * 3


def test_a_refusal_is_not_kept() -> None:
    backend = Reusable(refuse=True)
    for _ in range(2):
        with pytest.raises(BackendUnavailableError):
            fit_policy(backend, Policy.level("locked"), per_process_limits=False)
    assert backend.checks == ["locked", "locked"]
