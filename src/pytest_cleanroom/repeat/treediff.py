"""Copying a workspace and finding the first difference between two trees that started equal,
reading only the files whose ``lstat`` changed (or that were "racy" when the baseline was taken).

Two trees that start as exact copies and whose files' inode, size, mtime and ctime did not move
still hold the same bytes: a write always moves ctime, and ctime cannot be set from user space.
But ctime comes from the kernel's coarse clock: a file changed within :data:`RACY_WINDOW_NS`
before a command started might be changed again by the command within the same tick, leaving
its stat as it was. Such "racy" files are always compared by content (as git does with
racily-clean index entries). The window is measured to the start of the command on each tree
(:meth:`Baseline.as_of`), so the fresh copy's files are racy only for a command that starts
within the window after the copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..host_files import NotRegularFileError, read_regular

# Two and a half ticks of the kernel's coarse clock at HZ=100 (its coarsest usual setting).
RACY_WINDOW_NS = 25_000_000
_SECOND_NS = 1_000_000_000

StatKey = tuple[int, int, int, int, int, int]  # type+mode, inode, size, mtime, ctime, nlink
Describe = Callable[[bytes, bytes], str]


@dataclass(frozen=True)
class Baseline:
    """The ``lstat`` of every entry under a root, and when it was taken."""

    entries: dict[str, StatKey]
    taken_ns: int

    @classmethod
    def take(cls, root: Path) -> Baseline:
        taken = time.time_ns()
        return cls(scan(root), taken)

    def as_of(self, start_ns: int) -> Baseline:
        """The same entries, racy relative to ``start_ns``: when the command on the tree began
        (nothing else wrote to the tree since the entries were read)."""
        return Baseline(self.entries, start_ns)

    def unchanged(self, rel: str, now: StatKey) -> bool:
        before = self.entries.get(rel)
        return before == now and not is_racy(before[4], self.taken_ns)


def scan(root: Path) -> dict[str, StatKey]:
    """``{relative posix path: stat key}`` for every directory, file and symlink under ``root``
    (symlinks are not followed)."""
    found: dict[str, StatKey] = {}
    stack = [(root, "")]
    while stack:
        directory, prefix = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                rel = prefix + entry.name
                key = found[rel] = stat_key(entry.stat(follow_symlinks=False))
                if stat.S_ISDIR(key[0]):
                    stack.append((Path(entry.path), rel + "/"))
    return found


def stat_key(st: os.stat_result) -> StatKey:
    """What :func:`scan` records of an entry's ``lstat``."""
    return (st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_nlink)


def total_size(baseline: Baseline) -> int:
    """Bytes in the regular files of ``baseline``."""
    return sum(key[2] for key in baseline.entries.values() if stat.S_ISREG(key[0]))


def scratch_parent(workspace: Path, size: int, *, shm: Path = Path("/dev/shm")) -> Path:
    """Where to put a copy of ``workspace`` holding ``size`` bytes: RAM (``/dev/shm``) when it
    has ample room and its mount is no more restrictive (``noexec``, ``nosuid``, ``nodev``) than
    the workspace's, so that a program runs in the copy as in the original; else beside the
    workspace, on the same file system."""
    try:
        room = shutil.disk_usage(shm).free
    except OSError:
        return workspace.parent
    if room < 4 * size + (64 << 20):
        return workspace.parent
    restrictive = {"noexec", "nosuid", "nodev"}
    if mount_options(shm) & restrictive - mount_options(workspace):
        return workspace.parent
    return shm


def mount_options(path: Path) -> set[str]:
    """The per-mount options of the mount holding ``path`` (empty if unknown)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return set()
    target = os.path.realpath(path)
    best, options = "", set()
    for line in lines:
        fields = line.split()
        if len(fields) < 6:
            continue
        point = fields[4].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, options = point, set(fields[5].split(","))
    return options


def copy_tree(source: Path, target: Path) -> None:
    """Copy ``source`` to the new directory ``target`` with modes, times and symlinks.

    GNU ``cp -a`` (with reflinks where the file system has them) is several times faster than
    :func:`shutil.copytree` for many small files; the latter is the fallback.
    """
    cp = shutil.which("cp")
    if cp is not None:
        done = subprocess.run(
            [cp, "-a", "--reflink=auto", "--", str(source), str(target)],
            capture_output=True,
            check=False,
        )
        if done.returncode == 0:
            return
        shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, symlinks=True)


@dataclass
class TreeComparison:
    """What :func:`compare_trees` found: the first difference (``None`` when the trees agree),
    both trees' entries as read (the first's read from ``one_taken_ns``), the entries that
    changed in either tree, and the files equal only once ``rewrite_two`` was applied."""

    difference: str | None
    one_now: dict[str, StatKey]
    one_taken_ns: int
    two_now: dict[str, StatKey]
    touched: list[str]
    rewritten: list[str]


def compare_trees(
    one: Path,
    one_base: Baseline,
    two: Path,
    two_base: Baseline,
    *,
    describe: Describe,
    rewrite_two: Callable[[bytes], bytes] = lambda data: data,
) -> TreeComparison:
    """Compare trees ``one`` and ``two``, which were equal when their baselines were taken: the
    first difference by path (``None`` when they are still equal) and what was read (see
    :class:`TreeComparison`). ``rewrite_two`` is applied to the second tree's contents before
    comparing (e.g. to swap its root path for the first's)."""
    one_taken = time.time_ns()
    now_one, now_two = scan(one), scan(two)
    candidates = stat_changes(one_base.entries, now_one, one_base.taken_ns) | stat_changes(
        two_base.entries, now_two, two_base.taken_ns
    )
    return compare_entries(
        one, now_one, one_taken, two, now_two, candidates, describe=describe,
        rewrite_two=rewrite_two,
    )  # fmt: skip


def stat_changes(before: dict[str, StatKey], now: dict[str, StatKey], since_ns: int) -> set[str]:
    """Entries added, removed or changed between two readings of a tree, by their ``lstat``
    (with the racy ones: unchanged keys whose ctime lies within the window before ``since_ns``,
    when the tree was last read or a command on it began)."""
    return {
        rel
        for rel in before.keys() | now.keys()
        if before.get(rel) != now.get(rel) or (rel in now and is_racy(now[rel][4], since_ns))
    }


def compare_entries(
    one: Path,
    now_one: dict[str, StatKey],
    one_taken_ns: int,
    two: Path,
    now_two: dict[str, StatKey],
    candidates: set[str],
    *,
    describe: Describe,
    rewrite_two: Callable[[bytes], bytes] = lambda data: data,
) -> TreeComparison:
    """The first difference (by path) between two trees that were equal, looking only at the
    ``candidates`` (the entries that changed in either tree; the rest are equal still)."""
    touched: list[str] = []
    rewritten: list[str] = []

    def found(difference: str) -> TreeComparison:
        return TreeComparison(difference, now_one, one_taken_ns, now_two, touched, rewritten)

    for rel in sorted(candidates):
        a, b = now_one.get(rel), now_two.get(rel)
        if a is None or b is None:
            if a is not None:
                return found(f"{_kind(a)} {rel!r} exists only after the first run")
            if b is not None:
                return found(f"{_kind(b)} {rel!r} exists only after the second run")
            continue  # made and removed again in both
        touched.append(rel)
        if stat.S_IFMT(a[0]) != stat.S_IFMT(b[0]):
            return found(
                f"{rel!r} is a {_kind(a)} after the first run, a {_kind(b)} after the second"
            )
        if stat.S_IMODE(a[0]) != stat.S_IMODE(b[0]):
            return found(
                f"{_kind(a)} {rel!r} has mode {stat.S_IMODE(a[0]):04o} after the first run, "
                f"{stat.S_IMODE(b[0]):04o} after the second"
            )
        if stat.S_ISDIR(a[0]):
            continue
        first, raw = _content(one / rel, a), _content(two / rel, b)
        second = rewrite_two(raw)
        if first != second:
            return found(
                f"{_kind(a)} {rel!r} differs (sha256 {_short(first)} vs {_short(second)}): "
                f"{describe(first, second)}"
            )
        if second != raw:
            rewritten.append(rel)
    return TreeComparison(None, now_one, one_taken_ns, now_two, touched, rewritten)


def _content(path: Path, key: StatKey) -> bytes:
    if stat.S_ISLNK(key[0]):
        return os.fsencode(os.readlink(path))
    if stat.S_ISREG(key[0]):
        try:
            return read_regular(path)
        except NotRegularFileError as exc:  # swapped for a FIFO or a device since the listing
            return f"changed:{exc}".encode(errors="surrogateescape")
    return b""  # fifos, sockets, devices: their type and mode were compared


def _kind(key: StatKey) -> str:
    mode = key[0]
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISREG(mode):
        return "file"
    return "special file"


def _short(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16] + "..."


def is_racy(ctime_ns: int, taken_ns: int) -> bool:
    """Whether an entry whose ctime is ``ctime_ns`` may change again, when read at ``taken_ns``,
    without its ctime moving."""
    window = RACY_WINDOW_NS if ctime_ns % _SECOND_NS else _SECOND_NS + RACY_WINDOW_NS
    return ctime_ns >= taken_ns - window
