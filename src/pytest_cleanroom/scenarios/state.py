"""Per-test state the scenario sub-plugin keeps in ``item.stash`` (cheap to import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ..repeat.checker import RepeatChecker
    from .result import ScenarioResult

#: The result of the scenario a test ran (marker or scenario file).
RESULT_KEY: pytest.StashKey[ScenarioResult] = pytest.StashKey()
#: Whether the test's ``@pytest.mark.scenario`` asked for its failure to fail the test.
CHECK_KEY = pytest.StashKey[bool]()
#: An error the repeat check raised where the test could not see it (a fixture, a scenario).
DEFERRED_ERROR_KEY = pytest.StashKey[BaseException]()
#: The repeat checker attached to the test's cleanroom, if the check is on.
CHECKER_KEY: pytest.StashKey[RepeatChecker] = pytest.StashKey()
