"""Compile ``_nsinit.c`` once per source and flags into a cache every ``HOME`` shares, safely.

Where (the first that can be made safe): ``$CLEANROOM_NSINIT_CACHE`` when set (then only
there); ``__nsinit__`` beside this module, when this user may keep it there (a checkout, a
virtualenv, root's own site-packages); else ``$XDG_CACHE_HOME/pytest-cleanroom`` or the
``.cache/pytest-cleanroom`` of the user's home in the password database. Never ``$HOME``:
pytester and cleanrooms change it, and each new one would compile again.

The program runs with the engine's privileges (root, often): the directory and every one above
it must belong to root or this user and be writable by no one else (a sticky ``/tmp`` above is
fine); the program must be a regular file of this user, no link. Anything else found at its name
is replaced by a fresh build, never written through or run. Builds hold a lock in the directory,
so that concurrent processes (xdist workers) compile once; each writes a private temporary file
and renames it into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from ._handoff import LAUNCHER_ENV

SOURCE = Path(__file__).with_name("_nsinit.c")
#: Flags the program is compiled with (part of its cache key).
CFLAGS = ("-O2", "-std=gnu11")
#: Tried first: a static program starts without the dynamic loader's work, once per command.
STATIC = "-static"
#: Environment variable naming the one cache directory to use.
CACHE_ENV = "CLEANROOM_NSINIT_CACHE"
#: The cache beside the installed package (ignored by git, like ``__pycache__``).
PACKAGE_CACHE = Path(__file__).with_name("__nsinit__")
_LOCK_NAME = ".build.lock"

_lock = threading.Lock()
_built: dict[tuple[int, Path], tuple[str | None, str]] = {}
_default: dict[tuple[int, str | None, str | None], tuple[str | None, str]] = {}


def program(directory: Path | None = None) -> tuple[str | None, str]:
    """``(path of the compiled set-up program, "")``, or ``(None, why not)``. It is kept in
    ``directory`` (default: the first of :func:`cache_dirs` that is safe) and looked for at
    most once per process and directory, compiled only when missing."""
    if directory is None:  # the usual call, once or twice per command: no path work
        where = (os.getpid(), os.environ.get(CACHE_ENV), os.environ.get("XDG_CACHE_HOME"))
        known = _default.get(where)
        if known is None:
            _default[where] = known = _first_usable(cache_dirs())
        return known
    key = (os.getpid(), directory)
    with _lock:
        if key not in _built:
            _built[key] = _find_or_build(directory)
        return _built[key]


def cache_dirs() -> list[Path]:
    """The directories tried for the program, in order (see the module docstring)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return [Path(override)]
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    user = Path(xdg) if os.path.isabs(xdg) else _account_home() / ".cache"
    return [PACKAGE_CACHE, user / "pytest-cleanroom"]


def _account_home() -> Path:
    try:
        return Path(pwd.getpwuid(os.geteuid()).pw_dir)
    except KeyError:  # a uid without an account (some containers): only $HOME is left
        return Path(os.path.expanduser("~"))


def _first_usable(directories: list[Path]) -> tuple[str | None, str]:
    """The program from the first directory that can be made safe; why none could be."""
    problems: list[str] = []
    for directory in directories:
        real, problem = _prepare(directory)
        if real is not None:
            return program(real)
        problems.append(problem)
    return None, "; ".join(problems)


def _find_or_build(directory: Path) -> tuple[str | None, str]:
    try:
        source = SOURCE.read_bytes()
    except OSError as exc:
        return None, f"cannot read {SOURCE}: {exc}"
    digest = hashlib.sha256(source + " ".join((*CFLAGS, STATIC)).encode()).hexdigest()[:16]
    real, problem = _prepare(directory)
    if real is None:
        return None, problem
    target = real / f"nsinit-{os.uname().machine}-{digest}"
    if _trusted_file(target):
        return str(target), ""
    compiler = shutil.which("cc", path=LAUNCHER_ENV["PATH"]) or shutil.which(
        "gcc", path=LAUNCHER_ENV["PATH"]
    )
    if compiler is None:
        return None, "no C compiler on PATH (apt-get install gcc)"
    try:
        with _build_lock(real):
            if _trusted_file(target):  # another process built it while this one waited
                return str(target), ""
            return _compile(compiler, target)
    except OSError as exc:
        return None, f"cannot lock {real / _LOCK_NAME}: {exc}"


def _prepare(directory: Path) -> tuple[Path | None, str]:
    """``(the directory with no link in its path, "")`` once it exists private to this user, or
    ``(None, why it cannot hold a program this process runs)``. Every directory above it must
    be root's or this user's and writable by no one else (or sticky, like ``/tmp``)."""
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
        return f"{path} is not a directory: the compiled set-up step is not kept there"
    writable = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    if info.st_uid in owners and not (writable and not (sticky_ok and info.st_mode & stat.S_ISVTX)):
        return None
    return f"{path} may be changed by another user: the compiled set-up step is not used"


def _trusted_file(path: Path) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISREG(info.st_mode)
        and info.st_uid == os.geteuid()
        and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        and bool(info.st_mode & stat.S_IXUSR)
    )


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on a file in ``directory`` (a link planted there is refused)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(directory / _LOCK_NAME, flags, 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{directory / _LOCK_NAME} is not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _compile(compiler: str, target: Path) -> tuple[str | None, str]:
    """Compile into a private temporary name beside ``target``, then rename it into place."""
    fd, temporary = tempfile.mkstemp(prefix=".build-", dir=target.parent)
    os.close(fd)
    try:
        for flags in ((*CFLAGS, STATIC), CFLAGS):  # without the static C library: dynamic
            done = subprocess.run(
                [compiler, *flags, "-o", temporary, str(SOURCE)],
                env=dict(LAUNCHER_ENV),
                capture_output=True,
                text=True,
                errors="replace",
                check=False,
            )
            if done.returncode == 0:
                break
        if done.returncode != 0:
            return None, f"{compiler} could not compile {SOURCE.name}: {done.stderr.strip()[-500:]}"
        # Others may run it (never change it): the unshare backend starts it as the sandbox's
        # unprivileged user from a descriptor, under strict and locked.
        os.chmod(temporary, 0o555)
        os.replace(temporary, target)
    except OSError as exc:
        return None, f"cannot compile {SOURCE.name} into {target.parent}: {exc}"
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    return str(target), ""
