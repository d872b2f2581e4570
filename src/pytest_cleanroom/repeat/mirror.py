"""The repeat check's copy of a workspace, kept equal to it by copying only what changed.

The first checked command copies the whole workspace. When the two runs then agree, the copy
already holds what the workspace holds, so the next checked command needs only what changed in
between (files the test itself wrote, outputs the comparison accepted only once the copy's own
path was swapped for the workspace's), plus the workspace's times on the entries the command
touched. What changed is known from each tree's :class:`~.tree.Tree` (inotify events, else stat
keys). Special files and hard links are not copied one by one: they make :meth:`catch_up`
decline, and the caller copies the whole workspace again.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from .entries import remove
from .tree import Tree
from .treediff import StatKey, TreeComparison, copy_tree


class Mirror:
    """``copy``, a tree equal to the ``source`` tree as of their last readings."""

    def __init__(self, source: Tree, copy: Tree) -> None:
        self.source = source
        self.copy = copy

    @property
    def path(self) -> Path:
        return self.copy.root

    @property
    def entries(self) -> dict[str, StatKey]:
        return self.copy.entries

    @classmethod
    def create(cls, source: Tree, path: Path) -> Mirror:
        """Copy all of ``source`` (just read) to the new directory ``path``."""
        copy_tree(source.root, path)
        copy = Tree(path)
        copy.read()
        return cls(source, copy)

    def catch_up(self, changed: set[str]) -> bool:
        """Copy the source's ``changed`` entries (since the copy last equalled it; the source
        was just read), so that the copy equals it again; ``False`` (copy left unusable) when
        this cannot be done entry by entry."""
        if not changed:
            return True
        now = self.source.entries
        order = sorted(changed)
        try:
            for rel in reversed(order):  # children before their directory
                if rel not in now:
                    remove(self.path / rel)
            copied = [rel for rel in order if rel in now]
            for rel in copied:  # directories before their children
                if not _copy_entry(self.source.root / rel, self.path / rel, now[rel]):
                    return False
            self._copy_times(copied)
        except OSError:
            return False
        self.copy.read()  # takes in these writes of ours
        return True

    def settle(self, comparison: TreeComparison) -> None:
        """After runs that agree: give the copy the source's bytes where they agreed only once
        rewritten, and the source's times on every entry either run touched."""
        for rel in comparison.rewritten:
            _copy_entry(self.source.root / rel, self.path / rel, comparison.one_now[rel])
        self._copy_times([*comparison.touched, *comparison.rewritten])
        self.copy.read()  # takes in these writes of ours

    def close(self) -> None:
        self.copy.close()

    def _copy_times(self, changed: list[str]) -> None:
        """The source's times on ``changed`` entries and their directories (whose times moved
        in the copy when an entry was replaced there), the root's included."""
        rels = sorted({*changed, *(rel.rpartition("/")[0] for rel in changed)} - {""})
        for rel in [*reversed(rels), ""]:  # a directory's times after its children's changes
            source = os.lstat(self.source.root / rel)
            os.utime(
                self.path / rel, ns=(source.st_atime_ns, source.st_mtime_ns), follow_symlinks=False
            )


def _copy_entry(source: Path, target: Path, key: StatKey) -> bool:
    mode = key[0]
    if stat.S_ISDIR(mode):
        if not target.is_dir() or target.is_symlink():
            remove(target)
            target.mkdir()
        os.chmod(target, stat.S_IMODE(mode))
    elif stat.S_ISLNK(mode):
        remove(target)
        os.symlink(os.readlink(source), target)
    elif stat.S_ISREG(mode) and key[5] == 1:
        remove(target)
        shutil.copyfile(source, target)
        os.chmod(target, stat.S_IMODE(mode))
    else:  # a special file, or one of several hard links to the same file
        return False
    st = os.lstat(source)
    mine = os.lstat(target)
    if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
        os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
    return True
