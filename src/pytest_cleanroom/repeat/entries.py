"""Making some entries of one directory tree equal to another's: how the repeat check writes a
run's changes into the workspace (:func:`apply_changes`)."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class _Planned:
    rel: str
    st: os.stat_result
    data: Path | None = None  # a regular file's bytes, staged
    link_to: str | None = None  # an earlier entry this one is a hard link of
    symlink: str | None = None


def apply_changes(source: Path, target: Path, changed: Iterable[str], staging: Path) -> None:
    """Make each of the ``changed`` entries (relative paths) of ``target`` what it is in
    ``source``: removed, or made with the same type, bytes, mode, owner and times; the times of
    ``target`` itself too when anything changed.

    Everything is read from ``source`` first, files copied into the empty directory ``staging``
    (on ``target``'s file system, so they are then moved, not copied again): an error while
    reading leaves ``target`` untouched, and ``source`` may be gone (unmounted) before ``target``
    is written. Files that are hard links of one another in ``source`` are linked in
    ``target``; a file with several links that still share it in ``source`` (rewritten in
    place) is rewritten in place in ``target``, so that its other links there see it too.
    """
    order = sorted(changed)
    if not order:
        return
    plan = _stage(source, order, staging)
    root = os.lstat(source)
    present = {entry.rel for entry in plan}
    for rel in reversed(order):  # children before their directory
        if rel not in present:
            remove(target / rel)
    for entry in plan:  # directories before their children
        _put(entry, target)
    for entry in reversed(plan):
        st = entry.st
        os.utime(target / entry.rel, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    os.utime(target, ns=(root.st_atime_ns, root.st_mtime_ns))


def _stage(source: Path, order: list[str], staging: Path) -> list[_Planned]:
    plan: list[_Planned] = []
    first_link: dict[int, str] = {}
    for rel in order:
        path = source / rel
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            earlier = first_link.get(st.st_ino) if st.st_nlink > 1 else None
            if earlier is not None:
                plan.append(_Planned(rel, st, link_to=earlier))
                continue
            if st.st_nlink > 1:
                first_link[st.st_ino] = rel
            data = staging / str(len(plan))
            shutil.copyfile(path, data)
            plan.append(_Planned(rel, st, data=data))
        elif stat.S_ISLNK(st.st_mode):
            plan.append(_Planned(rel, st, symlink=os.readlink(path)))
        else:
            plan.append(_Planned(rel, st))
    return plan


def _put(entry: _Planned, root: Path) -> None:
    target = root / entry.rel
    st = entry.st
    now = _lstat(target)
    if stat.S_ISDIR(st.st_mode):
        if now is None or not stat.S_ISDIR(now.st_mode):
            remove(target)
            target.mkdir()
    elif entry.link_to is not None:
        earlier = root / entry.link_to
        if now is None or not os.path.samefile(earlier, target):
            remove(target)
            os.link(earlier, target)
        return  # the same file as the earlier entry: its mode and owner are set
    elif entry.data is not None:
        if st.st_nlink > 1 and now is not None and stat.S_ISREG(now.st_mode) and now.st_nlink > 1:
            with open(entry.data, "rb") as data, open(target, "r+b") as out:
                out.truncate(0)
                shutil.copyfileobj(data, out)
            entry.data.unlink()
        else:
            remove(target)
            os.rename(entry.data, target)
    elif entry.symlink is not None:
        remove(target)
        os.symlink(entry.symlink, target)
    else:  # a fifo, socket or device node
        remove(target)
        os.mknod(target, st.st_mode, st.st_rdev)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(target, stat.S_IMODE(st.st_mode))
    mine = os.lstat(target)
    if (mine.st_uid, mine.st_gid) != (st.st_uid, st.st_gid):
        os.chown(target, st.st_uid, st.st_gid, follow_symlinks=False)


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def remove(path: Path) -> None:
    """Remove ``path`` (a whole directory tree, a file or a link), if it exists."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass
