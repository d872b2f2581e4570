"""Snapshot testing of cleanroom outputs through syrupy: normalisers for what varies between runs
and machines, a workspace-tree view and syrupy extension, and the pytest fixtures.

Importing this package is cheap (syrupy loads only where an extension is used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

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


__getattr__ = lazy_getattr(__name__, _LAZY)
