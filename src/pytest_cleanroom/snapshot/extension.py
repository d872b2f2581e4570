"""syrupy extensions: amber files written safely, and whole workspace trees (imports syrupy:
load it lazily).

:class:`SafeAmberSnapshotExtension` is amber written through
:func:`pytest_cleanroom.safe_write.write_output`: a snapshot file that is a symbolic link, a
device, a FIFO or a directory, or that sits in a snapshot directory that is a link, is refused
with one :class:`~pytest_cleanroom.errors.OutputPathError` naming it; a file is replaced
atomically, never half-written. The plugin makes it syrupy's default extension unless
``--snapshot-default-extension`` names another.

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
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syrupy.extensions.amber import AmberSnapshotExtension

from ..errors import OutputPathError
from ..safe_write import write_output
from ..workspace import Workspace
from .normalise import Normaliser
from .tree import workspace_tree

if TYPE_CHECKING:
    from syrupy.data import SnapshotCollection


def check_snapshot_path(location: Path) -> None:
    """Refuse a snapshot file that is not a regular file (or absent) directly in a real
    snapshot directory: :class:`OutputPathError` naming it and the fix."""
    directory = location.parent
    fix = "remove it and run with --snapshot-update again"
    if directory.is_symlink():
        raise OutputPathError(
            directory,
            f"the snapshot directory is a symbolic link (to {os.readlink(directory)});"
            f" snapshots are written only into a real directory: {fix}",
        )
    try:
        info = os.lstat(location)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise OutputPathError(
            location,
            f"the snapshot file is a symbolic link (to {os.readlink(location)}); a snapshot is"
            f" written only as a regular file in {directory}: {fix}",
        )
    if not stat.S_ISREG(info.st_mode):
        raise OutputPathError(
            location,
            "the snapshot file is not a regular file (a device, FIFO, socket or directory);"
            f" refusing to write a snapshot there: {fix}",
        )


def _check_readable(location: Path) -> None:
    """Refuse to read a snapshot from a FIFO or device (the read would block or never end)."""
    try:
        info = os.stat(location)
    except OSError:
        return  # absent (or a dangling link): syrupy reads no snapshot
    if not stat.S_ISREG(info.st_mode):
        raise OutputPathError(
            location,
            "the snapshot file is not a regular file (a device, FIFO, socket or directory);"
            " refusing to read a snapshot from it: remove it and run with --snapshot-update",
        )


class SafeAmberSnapshotExtension(AmberSnapshotExtension):
    """syrupy's amber snapshots, written only as regular files (see the module doc)."""

    @classmethod
    def write_snapshot_collection(
        cls,
        *,
        snapshot_collection: SnapshotCollection,
        name_order: dict[str, int] | None = None,
    ) -> None:
        location = Path(snapshot_collection.location)
        check_snapshot_path(location)
        merged = cls.serializer_class.read_file(str(location))
        merged.merge(snapshot_collection)
        _write_collection(cls, location, merged, name_order)

    def read_snapshot_collection(self, snapshot_location: str) -> SnapshotCollection:
        _check_readable(Path(snapshot_location))
        return super().read_snapshot_collection(snapshot_location)

    def read_snapshot_data_from_location(
        self, snapshot_location: str, snapshot_name: str, session_id: str
    ) -> Any:
        _check_readable(Path(snapshot_location))
        return super().read_snapshot_data_from_location(
            snapshot_location, snapshot_name, session_id
        )

    def delete_snapshots(self, snapshot_location: str, snapshot_names: set[str]) -> None:
        location = Path(snapshot_location)
        check_snapshot_path(location)
        remaining = self.serializer_class.read_file(snapshot_location)
        for name in snapshot_names:
            remaining.remove(name)
        if remaining.has_snapshots:
            _write_collection(type(self), location, remaining, None)
        else:
            location.unlink(missing_ok=True)


def _write_collection(
    cls: type[AmberSnapshotExtension],
    location: Path,
    collection: SnapshotCollection,
    name_order: dict[str, int] | None,
) -> None:
    """Amber's own text of ``collection``, written to ``location`` by ``write_output``."""
    from syrupy.data import SnapshotCollection

    with tempfile.TemporaryDirectory(prefix="cleanroom-snapshot-") as tmp:
        staged = SnapshotCollection(location=os.path.join(tmp, location.name))
        for snapshot in collection:
            staged.add(snapshot)
        if name_order is None:  # syrupy before 5 has no name_order
            cls.serializer_class.write_file(staged, merge=False)
        else:
            cls.serializer_class.write_file(staged, merge=False, name_order=name_order)
        data = Path(staged.location).read_bytes()
    check_snapshot_path(location)  # again: the check and the write are as close as can be
    write_output(location, data)


class WorkspaceSnapshotExtension(SafeAmberSnapshotExtension):
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
