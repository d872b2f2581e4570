"""Snapshot testing of cleanroom outputs through syrupy: normalisers for what varies between runs
and machines, a workspace-tree view and syrupy extension, and the pytest fixtures.

Importing this package is cheap (syrupy loads only where an extension is used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "CleanroomSnapshot",
    "Normaliser",
    "WorkspaceSnapshotExtension",
    "snapshot_view",
    "workspace_tree",
]

_LAZY = {
    "Normaliser": "normalise",
    "workspace_tree": "tree",
    "snapshot_view": "views",
    "CleanroomSnapshot": "views",
    "WorkspaceSnapshotExtension": "extension",
}

if TYPE_CHECKING:
    from .extension import WorkspaceSnapshotExtension
    from .normalise import Normaliser
    from .tree import workspace_tree
    from .views import CleanroomSnapshot, snapshot_view


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{module}"), name)
