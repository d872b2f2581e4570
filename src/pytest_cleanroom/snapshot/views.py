"""Stable, reviewable views of cleanroom objects for snapshots, and the ``cleanroom_snapshot``
wrapper around syrupy's ``snapshot`` that normalises what it is compared with."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..result import RunResult
from ..workspace import Workspace
from .tree import workspace_tree

TextNormaliser = Callable[[str], str]


def snapshot_view(obj: Any, normalise: TextNormaliser | None = None, **tree_options: Any) -> Any:
    """``obj`` as plain data fit for a snapshot, with ``normalise`` applied to every string.

    A :class:`RunResult` keeps what a reviewer cares about (command, exit code, both streams; the
    timeout or limit when one ended it) and drops what varies (duration, memory, timestamps).
    A :class:`ScenarioResult` becomes its steps' views; a :class:`Workspace` its tree text
    (``tree_options`` are :func:`~.tree.workspace_tree`'s ``exclude`` and ``max_text_bytes``).
    """
    from ..scenarios.result import ScenarioResult, StepOutcome

    def norm(text: str) -> str:
        return normalise(text) if normalise is not None else text

    if isinstance(obj, RunResult):
        view: dict[str, Any] = {
            "command": [norm(a) for a in obj.command],
            "exit_code": obj.exit_code,
            "stdout": norm(obj.stdout),
            "stderr": norm(obj.stderr),
        }
        if obj.timed_out:
            view["timed_out"] = True
        if obj.limit_exceeded is not None:
            view["limit_exceeded"] = obj.limit_exceeded
        return view
    if isinstance(obj, StepOutcome):
        step: dict[str, Any] = {"name": obj.name, "status": obj.status}
        if obj.result is not None:
            step.update(snapshot_view(obj.result, normalise))
        else:
            step["command"] = norm(obj.step.command_line)
        if obj.problems:
            step["problems"] = [norm(p) for p in obj.problems]
        if obj.skipped_reason:
            step["skipped_reason"] = norm(obj.skipped_reason)
        return step
    if isinstance(obj, ScenarioResult):
        return {
            "scenario": obj.name,
            "ok": obj.ok,
            "steps": [snapshot_view(o, normalise) for o in obj.outcomes],
            "rollback": [snapshot_view(o, normalise) for o in obj.rollback],
        }
    if isinstance(obj, Workspace):
        return workspace_tree(obj.root, normalise=normalise, **tree_options)
    if isinstance(obj, str):
        return norm(obj)
    if isinstance(obj, dict):
        return {k: snapshot_view(v, normalise, **tree_options) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot_view(v, normalise, **tree_options) for v in obj)
    return obj


def cleanroom_matcher(normalise: TextNormaliser) -> Callable[..., Any]:
    """A syrupy ``matcher`` that applies :func:`snapshot_view` (and so ``normalise``) to the data:
    ``assert result == snapshot(matcher=cleanroom_matcher(norm))``."""

    def matcher(*, data: Any, path: Any) -> Any:
        if isinstance(data, str):
            return normalise(data)
        if isinstance(data, (RunResult, Workspace)) or _is_scenario_object(data):
            return snapshot_view(data, normalise)
        return data

    return matcher


def _is_scenario_object(data: Any) -> bool:
    module = type(data).__module__
    return module.startswith("pytest_cleanroom.scenarios.")


class CleanroomSnapshot:
    """syrupy's ``snapshot`` with the test's normaliser applied to what it is compared with.

    It shares the test's ``snapshot`` assertion (and so its numbering and its snapshot file):
    ``--snapshot-update`` and unused-snapshot detection behave exactly as with ``snapshot``.
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(self, inner: Any, normalise: TextNormaliser, *, tree: bool = False) -> None:
        self.inner = inner
        self.normalise = normalise
        self.tree = tree
        self._tree_options: dict[str, Any] = {}

    def __eq__(self, other: object) -> bool:
        if self.tree and not isinstance(other, Workspace):
            if isinstance(other, (str, os.PathLike)) and Path(other).is_dir():
                other = Workspace(other)
            else:
                raise TypeError(
                    f"workspace_snapshot compares a Workspace or a directory, not {other!r}"
                )
        options, self._tree_options = self._tree_options, {}
        return bool(self.inner == snapshot_view(other, self.normalise, **options))

    def __call__(
        self,
        *,
        tree_exclude: Iterable[str] | None = None,
        max_text_bytes: int | None = None,
        **options: Any,
    ) -> CleanroomSnapshot:
        """Options for the next assertion: a tree's ``tree_exclude`` (glob patterns, replacing
        the default list) and ``max_text_bytes``, and syrupy's own (``name=``, ...)."""
        if tree_exclude is not None:
            self._tree_options["exclude"] = tuple(tree_exclude)
        if max_text_bytes is not None:
            self._tree_options["max_text_bytes"] = max_text_bytes
        if options:
            self.inner(**options)
        return self

    @property
    def name(self) -> str:
        return str(self.inner.name)

    def __repr__(self) -> str:
        return repr(self.inner)
