"""Hooks through which the cleanroom's sub-plugins (and users' conftests) cooperate.

Implement them in a conftest or plugin like any pytest hook.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .engine import Cleanroom
    from .result import RunResult

hookspec = pytest.hookspec


@hookspec
def pytest_cleanroom_created(item: pytest.Item, cleanroom: Cleanroom) -> None:
    """A test's ``cleanroom`` fixture has just been built (expose services, add listeners)."""


@hookspec
def pytest_cleanroom_result(item: pytest.Item, result: RunResult) -> None:
    """A command run through a test's cleanroom has finished (reports, attestations)."""
