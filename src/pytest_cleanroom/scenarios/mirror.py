"""The repeat check's copy of a workspace, kept equal to it by copying only what changed.

The first checked command copies the whole workspace. When the two runs then agree, the copy
already holds what the workspace holds, so the next checked command needs only what changed in
between (files the test itself wrote, outputs the comparison accepted only once the copy's own
path was swapped for the workspace's), plus the workspace's times on the entries the command
touched. Special files and hard links are not copied one by one: they make :meth:`catch_up`
decline, and the caller copies the whole workspace again.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from .treediff import StatKey, TreeComparison, copy_tree, is_racy, scan


@dataclass
class Mirror:
    """A copy at ``path`` of ``source``, equal to it as of ``source_entries`` (read from
    ``source_taken_ns``); ``entries`` are the copy's own ``lstat`` keys, as of now."""

    source: Path
    path: Path
    entries: dict[str, StatKey]
    source_entries: dict[str, StatKey]
    source_taken_ns: int

    @classmethod
    def create(cls, source: Path, path: Path, now: dict[str, StatKey], taken_ns: int) -> Mirror:
        """Copy all of ``source`` (whose entries, read from ``taken_ns``, are ``now``)."""
        copy_tree(source, path)
        return cls(source, path, scan(path), now, taken_ns)

    def catch_up(self, now: dict[str, StatKey]) -> bool:
        """Copy what changed in the source since it was last read (``now`` is its new reading),
        so that the copy equals it again; ``False`` (copy left unusable) when this cannot be done
        entry by entry."""
        old = self.source_entries
        changed = sorted(
            rel
            for rel in now.keys() | old.keys()
            if now.get(rel) != old.get(rel)
            or (rel in now and is_racy(old[rel][4], self.source_taken_ns))
        )
        if not changed:
            return True
        try:
            for rel in reversed(changed):  # children before their directory
                if rel not in now:
                    _remove(self.path / rel)
                    self.entries.pop(rel, None)
            copied = [rel for rel in changed if rel in now]
            for rel in copied:  # directories before their children
                if not _copy_entry(self.source / rel, self.path / rel, now[rel]):
                    return False
            self._copy_times(copied)
        except OSError:
            return False
        return True

    def settle(self, comparison: TreeComparison) -> None:
        """After runs that agree: give the copy the source's bytes where they agreed only once
        rewritten, and the source's times on every entry either run touched."""
        for rel in comparison.rewritten:
            _copy_entry(self.source / rel, self.path / rel, comparison.one_now[rel])
        self.entries = comparison.two_now
        self._copy_times([*comparison.touched, *comparison.rewritten])
        self.source_entries = comparison.one_now
        self.source_taken_ns = comparison.one_taken_ns

    def _copy_times(self, changed: list[str]) -> None:
        """The source's times on ``changed`` entries and their directories (whose times moved
        in the copy when an entry was replaced there), the root's included."""
        rels = sorted({*changed, *(rel.rpartition("/")[0] for rel in changed)} - {""})
        for rel in [*reversed(rels), ""]:  # a directory's times after its children's changes
            source = os.lstat(self.source / rel)
            os.utime(
                self.path / rel, ns=(source.st_atime_ns, source.st_mtime_ns), follow_symlinks=False
            )
        for rel in rels:
            self.entries[rel] = stat_key(os.lstat(self.path / rel))


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_nlink)


def _copy_entry(source: Path, target: Path, key: StatKey) -> bool:
    mode = key[0]
    if stat.S_ISDIR(mode):
        if not target.is_dir() or target.is_symlink():
            _remove(target)
            target.mkdir()
        os.chmod(target, stat.S_IMODE(mode))
    elif stat.S_ISLNK(mode):
        _remove(target)
        os.symlink(os.readlink(source), target)
    elif stat.S_ISREG(mode) and key[5] == 1:
        _remove(target)
        shutil.copyfile(source, target)
        os.chmod(target, stat.S_IMODE(mode))
    else:  # a special file, or one of several hard links to the same file
        return False
    st = os.lstat(source)
    mine = os.lstat(target)
    if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
        os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)
    return True


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass
