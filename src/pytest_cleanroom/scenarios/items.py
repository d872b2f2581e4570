"""Collection of ``*.scenario.toml`` files: one real pytest item per scenario and matrix row.

Items are :class:`pytest.Function` subclasses, so fixtures resolve as for any test: the item asks
for ``cleanroom`` and, by name, for the services its scenario lists (``postgres``, ``redis``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..result import CleanroomAssertionError
from .files import ScenarioFileError, ScenarioVariant, load_scenario_file
from .result import ScenarioResult
from .state import RESULT_KEY

MARKER = "scenario"


class ScenarioFile(pytest.File):
    """A ``*.scenario.toml`` file; a malformed one is a collection error naming its line."""

    def collect(self) -> list[pytest.Item]:
        try:
            variants = load_scenario_file(self.path)
        except ScenarioFileError as exc:
            raise self.CollectError(str(exc)) from None
        return [ScenarioItem.for_variant(self, v) for v in variants]


class ScenarioItem(pytest.Function):
    """One scenario (one matrix row) of a scenario file, run in the test's ``cleanroom``."""

    variant: ScenarioVariant

    @classmethod
    def for_variant(cls, parent: ScenarioFile, variant: ScenarioVariant) -> ScenarioItem:
        try:
            marks = [getattr(pytest.mark, name) for name in variant.markers]
        except pytest.fail.Exception as exc:  # --strict-markers and an unregistered marker
            where = f"{parent.path}:{variant.markers_line}"
            raise parent.CollectError(f"{where}: {exc.msg}") from None
        marks.append(pytest.mark.scenario(variant.scenario))
        function = _scenario_function(variant)
        for mark in marks:
            function = mark(function)
        item = cls.from_parent(parent, name=variant.id, callobj=function, originalname=variant.id)
        item.variant = variant
        # -k matches these besides the item's and the file's names and the markers.
        item.extra_keyword_matches.update({variant.scenario.name, *variant.scenario.services})
        return item

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.variant.line - 1, f"scenario {self.variant.id}"

    def repr_failure(  # type: ignore[override]
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> Any:
        # A failed step or a failed repeat check explains itself; the plugin's frames do not.
        if isinstance(excinfo.value, CleanroomAssertionError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def _scenario_function(variant: ScenarioVariant) -> Callable[..., None]:
    """The item's test function; its signature names the fixtures the item needs."""
    services = variant.scenario.services

    def run_scenario_file(request: pytest.FixtureRequest, cleanroom: Any, **_: Any) -> None:
        __tracebackhide__ = True
        result: ScenarioResult = cleanroom.run_scenario(variant.scenario)
        request.node.stash[RESULT_KEY] = result
        result.assert_success()

    params = [
        inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        for name in ("request", "cleanroom", *services)
    ]
    run_scenario_file.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return run_scenario_file
