"""Copy-on-write starting states for the repeat check, where the kernel allows it.

Both runs of a checked command start from the workspace as it is, and neither copies it: each
runs in its own overlay mount whose lower layer is the workspace and whose upper layer receives
what that run writes. Afterwards each upper layer lists exactly what its run changed, the two
views are compared on those entries only, and the first run's changes are written into the
workspace (:func:`~.entries.apply_changes`). The check then costs the second run, four mount
calls and work in proportion to what the command wrote, whatever the size of the workspace.

Overlay mounts need the right to mount (root) and overlayfs with ``index=on``, which keeps hard
links linked when a run writes to one of them. Where that is not possible the checker copies the
workspace instead (:mod:`.mirror`). The mounts live in the host's mount namespace only while a
command is checked; a process killed meanwhile leaves them behind, and the next process to use
the check unmounts them (:func:`sweep_stale`).
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .libc import libc
from .treediff import StatKey, scan, scratch_parent, stat_key

#: Names the scratch directories, with the pid of the process that owns them.
PREFIX = ".cleanroom-overlay-"
_OPTIONS = "index=on,redirect_dir=on,metacopy=off,volatile"
_MNT_DETACH = 2
_OPAQUE = "trusted.overlay.opaque"
_REDIRECT = "trusted.overlay.redirect"
# Characters that the overlay's option string gives a meaning (layer and option separators).
_UNSAFE = frozenset(",:\\\n")

_unavailable: str | None = None  # why overlays cannot be used in this process, once known
_swept = False


class OverlayUnavailableError(OSError):
    """Overlay mounts cannot be used here; the reason is the message."""


def _lib() -> ctypes.CDLL:
    found = libc()
    if found is None:
        raise OverlayUnavailableError("the C library cannot be loaded to mount overlays")
    return found


@functools.cache
def _kernel_reason() -> str | None:
    try:
        if "\toverlay\n" not in Path("/proc/filesystems").read_text():
            return "the kernel has no overlayfs"
    except OSError:
        return "/proc/filesystems is unreadable"
    return None


def unavailable_reason(workspace: Path) -> str | None:
    """Why copy-on-write views of ``workspace`` cannot be made, or ``None`` when they can (as
    far as can be told without mounting: the first mount settles it)."""
    if _unavailable is not None:
        return _unavailable
    if os.geteuid() != 0:
        return "overlay mounts need root"
    kernel = _kernel_reason()
    if kernel is not None:
        return kernel
    if _UNSAFE & set(os.fspath(workspace)):
        return f"the workspace path {workspace} has characters overlay options cannot carry"
    return None


@dataclass(frozen=True)
class Layer:
    """One overlay: ``merged`` shows the workspace with ``upper`` (what the run wrote) on top."""

    upper: Path
    work: Path
    merged: Path

    def mount(self, lower: Path) -> None:
        for directory in (self.upper, self.work):
            if directory.exists():
                shutil.rmtree(directory)
            directory.mkdir()
        self.merged.mkdir(exist_ok=True)
        options = f"lowerdir={lower},upperdir={self.upper},workdir={self.work},{_OPTIONS}"
        if _lib().mount(b"overlay", os.fsencode(self.merged), b"overlay", 0, options.encode()):
            errno = ctypes.get_errno()
            raise OverlayUnavailableError(
                errno, f"cannot mount an overlay of {lower}: {os.strerror(errno)}"
            )

    def unmount(self) -> None:
        if _lib().umount2(os.fsencode(self.merged), _MNT_DETACH):
            errno = ctypes.get_errno()
            if errno != 22:  # EINVAL: not mounted
                raise OSError(errno, f"cannot unmount {self.merged}: {os.strerror(errno)}")

    def changes(self, lower: Path) -> set[str]:
        """The entries (relative paths) that this layer's run added, changed or removed."""
        found: set[str] = set()
        stack = [""]
        while stack:
            prefix = stack.pop()
            with os.scandir(self.upper / prefix) as entries:
                for entry in entries:
                    rel = prefix + entry.name
                    found.add(rel)
                    if not entry.is_dir(follow_symlinks=False):
                        continue  # a file, a symlink or a whiteout (a removed entry)
                    if _replaces_lower(entry.path):
                        # Made anew (or renamed here): none of its entries are the lower's.
                        found.update(f"{rel}/{r}" for r in scan(self.merged / rel))
                        found.update(f"{rel}/{name}" for name in _names(lower / rel))
                    else:
                        stack.append(rel + "/")
        return found

    def keys(self, rels: set[str]) -> dict[str, StatKey]:
        """The ``lstat`` keys of those of ``rels`` that exist in the merged view."""
        found: dict[str, StatKey] = {}
        for rel in rels:
            try:
                found[rel] = stat_key(os.lstat(self.merged / rel))
            except FileNotFoundError:
                continue
        return found


class OverlayPair:
    """Two overlays of one workspace, ``first`` and ``second``, at fixed places in a scratch
    directory of their own (so a replay cleanroom rooted at ``second.merged`` can be reused)."""

    def __init__(self, lower: Path, scratch: Path) -> None:
        self.lower = lower
        self.scratch = scratch
        self.first = _layer(scratch / "first")
        self.second = _layer(scratch / "second")
        self.mounted = False
        self._used = 0
        self._staging_root: Path | None = None

    @classmethod
    def create(cls, lower: Path) -> OverlayPair:
        """Make the layers' scratch directory: in RAM (``/dev/shm``) where :func:`scratch_parent`
        allows, where mounting and making the layers' directories cost a third as much as on
        disk; else beside the workspace."""
        global _swept
        if not _swept:
            _swept = True
            sweep_stale()
        parent = scratch_parent(lower, 0)
        scratch = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent))
        for layer in ("first", "second"):
            (scratch / layer).mkdir()
        return cls(lower, scratch)

    def mount(self) -> None:
        """Mount both views of the workspace as it is now; on failure nothing stays mounted,
        and later checks in this process copy instead."""
        global _unavailable
        try:
            self.first.mount(self.lower)
            self.mounted = True
            self.second.mount(self.lower)
        except OverlayUnavailableError as exc:
            _unavailable = str(exc)
            self.unmount()
            raise

    def unmount(self) -> None:
        """Unmount both views and empty their upper layers."""
        if not self.mounted:
            return
        self.mounted = False
        errors: list[OSError] = []
        for layer in (self.first, self.second):
            try:
                layer.unmount()
            except OSError as exc:
                errors.append(exc)
                continue
            # Set aside, removed by close(): removing them now would cost the unit a few ms.
            for directory in (layer.upper, layer.work):
                if directory.exists():
                    self._used += 1
                    directory.rename(self.scratch / f"used-{self._used}")
        if errors:
            raise errors[0]

    def staging(self) -> Path:
        """An empty directory beside the workspace (on its file system, so that what is staged
        there is moved into it, not copied again), for :func:`~.entries.apply_changes`."""
        if self._staging_root is None:
            self._staging_root = Path(
                tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=self.lower.parent)
            )
        path = self._staging_root / "staging"
        if path.exists():
            shutil.rmtree(path)
        path.mkdir()
        return path

    def close(self) -> None:
        """Unmount and remove the scratch directories (kept if something stays mounted)."""
        if self._staging_root is not None:
            shutil.rmtree(self._staging_root, ignore_errors=True)
        try:
            self.unmount()
        except OSError:
            return
        shutil.rmtree(self.scratch, ignore_errors=True)


def _layer(base: Path) -> Layer:
    return Layer(base / "upper", base / "work", base / "merged")


def _replaces_lower(path: str) -> bool:
    """Whether an upper directory hides the lower one at its path: made anew after the lower
    was removed (opaque), or moved here from elsewhere (redirect)."""
    try:
        if os.getxattr(path, _OPAQUE, follow_symlinks=False) == b"y":
            return True
    except OSError:
        pass
    try:
        os.getxattr(path, _REDIRECT, follow_symlinks=False)
    except OSError:
        return False
    return True


def _names(directory: Path) -> list[str]:
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        return []
    return os.listdir(directory) if stat.S_ISDIR(st.st_mode) else []


def overlay_lower(path: Path) -> Path | None:
    """The lower directory of the overlay mounted exactly at ``path``, or ``None`` when no
    overlay is mounted there (so ``path`` shows that directory, plus what was written to it)."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    found: Path | None = None
    for line in lines:
        mount, _, sup = line.partition(" - ")
        fields, sup_fields = mount.split(), sup.split()
        if len(fields) < 5 or len(sup_fields) < 3 or fields[4].replace("\\040", " ") != target:
            continue
        lowers = [o for o in sup_fields[2].split(",") if o.startswith("lowerdir=")]
        found = None  # a later mount on the same point hides the earlier one
        if sup_fields[0] == "overlay" and len(lowers) == 1 and ":" not in lowers[0]:
            found = Path(lowers[0][len("lowerdir=") :].replace("\\040", " "))
    return found


def sweep_stale() -> None:
    """Unmount and remove overlays left by processes that died while checking a command."""
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return
    stale: dict[Path, list[Path]] = {}
    for line in lines:
        fields = line.split()
        if len(fields) < 5 or f"/{PREFIX}" not in fields[4]:
            continue
        point = Path(fields[4].replace("\\040", " "))
        scratch = point.parents[1]
        owner = scratch.name[len(PREFIX) :].partition("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            stale.setdefault(scratch, []).append(point)
    for scratch, points in stale.items():
        failed = [p for p in points if _lib().umount2(os.fsencode(p), _MNT_DETACH) != 0]
        if not failed:  # never remove a tree that still has a mount inside
            shutil.rmtree(scratch, ignore_errors=True)
