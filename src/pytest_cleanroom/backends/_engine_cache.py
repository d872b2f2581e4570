"""The engine's per-user cache of files it makes and then trusts: the compiled set-up step and
the seccomp programs, each under a name carrying the digest of what made it.

Where: ``$CLEANROOM_NSINIT_CACHE`` when set, else ``$XDG_CACHE_HOME/pytest-cleanroom`` or the
``.cache/pytest-cleanroom`` of the user's home in the password database. Never ``$HOME``
(pytester and cleanrooms change it: each new one would build again), never the installed package
(``pip uninstall`` would leave it behind).

What is kept there runs or is loaded with the engine's privileges (root, often): the directory
and every one above it must belong to root or this user and be writable by no one else (a sticky
``/tmp`` above is fine); a file is used only when it is a regular file of this user that no one
else may change, never through a link. Files are written under a private temporary name and
renamed into place, so whatever was found at the name is replaced, never written through.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
import tempfile
from pathlib import Path

#: Environment variable naming the one cache directory to use.
CACHE_ENV = "CLEANROOM_NSINIT_CACHE"


def cache_dir() -> Path:
    """The cache directory (see the module docstring); not checked: see :func:`prepare`."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override)
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    user = Path(xdg) if os.path.isabs(xdg) else _account_home() / ".cache"
    return user / "pytest-cleanroom"


def _account_home() -> Path:
    try:
        return Path(pwd.getpwuid(os.geteuid()).pw_dir)
    except KeyError:  # a uid without an account (some containers): only $HOME is left
        return Path(os.path.expanduser("~"))


def prepare(directory: Path) -> tuple[Path | None, str]:
    """``(the directory with no link in its path, "")`` once it exists private to this user, or
    ``(None, why it cannot hold what this process runs)``. Every directory above it must be
    root's or this user's and writable by no one else (or sticky, like ``/tmp``)."""
    real = Path(os.path.realpath(directory))
    existing = real
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    for path in (existing, *existing.parents):
        if path != real:
            problem = _shared(path, owners=(0, os.geteuid()), sticky_ok=True)
            if problem is not None:
                return None, problem
    try:
        real.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return None, f"cannot create the cache directory {real}: {exc}"
    if os.path.realpath(real) != str(real):
        return None, f"{real} became a symbolic link while it was made: not used"
    problem = _shared(real, owners=(os.geteuid(),), sticky_ok=False)
    return (None, problem) if problem is not None else (real, "")


def _shared(path: Path, *, owners: tuple[int, ...], sticky_ok: bool) -> str | None:
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"cannot inspect {path}: {exc}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{path} is not a directory: the engine's cache is not kept there"
    writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if info.st_uid in owners and not (writable and not (sticky_ok and info.st_mode & stat.S_ISVTX)):
        return None
    return f"{path} may be changed by another user: the engine's cache is not used"


def trusted_file(path: Path, *, executable: bool) -> bool:
    """Whether ``path`` is a regular file (no link) of this user that no one else may change,
    executable by its owner where ``executable``."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_uid == os.geteuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        and (not executable or bool(info.st_mode & stat.S_IXUSR))
    )


def place(target: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a private temporary file beside ``target``, then rename it over
    whatever is at ``target`` (a rename replaces a link, it never follows one)."""
    fd, temporary = tempfile.mkstemp(prefix=".write-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            os.fchmod(file.fileno(), mode)
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
