"""A syrupy extension that snapshots a whole workspace tree (imports syrupy: load it lazily).

With plain syrupy::

    from pytest_cleanroom.snapshot import WorkspaceSnapshotExtension

    def test_tree(cleanroom, workspace, snapshot):
        cleanroom.run("make")
        assert workspace == snapshot.use_extension(WorkspaceSnapshotExtension)

The tree's own root is always written ``<workspace>`` and pytest's and ``mkdtemp``'s temporary
directories ``<basetemp>``/``<tmp>``, so the snapshot does not depend on where the run happened
even without a matcher (syrupy's ``use_extension`` keeps only *default* matchers: a
``snapshot(matcher=m).use_extension(X)`` loses ``m``). Give a matcher with the extension in one
call for more, for instance ``pytest_cleanroom.snapshot.views.cleanroom_matcher``::

    snapshot(matcher=matcher, extension_class=WorkspaceSnapshotExtension)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from syrupy.extensions.amber import AmberSnapshotExtension

from ..workspace import Workspace
from .normalise import Normaliser
from .tree import workspace_tree


class WorkspaceSnapshotExtension(AmberSnapshotExtension):
    """Amber snapshots in which a :class:`Workspace` (or a directory path) is stored as its tree:
    paths, modes, sizes, sha256 digests and the text of small text files."""

    def serialize(self, data: Any, **kwargs: Any) -> Any:
        root = _tree_root(data)
        if root is not None:
            matcher = kwargs.get("matcher")
            where = Normaliser.for_run(workspace=root, durations=False, timestamps=False)

            def normalise(text: str) -> str:
                return where(str(matcher(data=text, path=())) if matcher else text)

            data = workspace_tree(root, normalise=normalise)
        return super().serialize(data, **kwargs)


def _tree_root(data: Any) -> Path | None:
    if isinstance(data, Workspace):
        return data.root
    if isinstance(data, os.PathLike) and Path(data).is_dir():
        return Path(data)
    return None
