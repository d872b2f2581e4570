"""Compile ``_nsinit.c`` once per source and flags into the engine's cache, safely.

The program is kept in the per-user cache of :mod:`._engine_cache` (never beside the installed
package, which ``pip uninstall`` would leave behind; never under ``$HOME``, which pytester and
cleanrooms change), under a name carrying the digest of its source and flags. Anything found at
that name that is not this user's regular file (a link, a file of another user, one others may
change) is replaced by a fresh build, never written through or run. Builds hold a lock in the
directory, so that concurrent processes (xdist workers) compile once; each writes a private
temporary file and renames it into place.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from . import _engine_cache
from ._handoff import LAUNCHER_ENV

SOURCE = Path(__file__).with_name("_nsinit.c")
#: Flags the program is compiled with (part of its cache key).
CFLAGS = ("-O2", "-std=gnu11")
#: Tried first: a static program starts without the dynamic loader's work, once per command.
STATIC = "-static"
#: Environment variable naming the one cache directory to use.
CACHE_ENV = _engine_cache.CACHE_ENV
_LOCK_NAME = ".build.lock"

_lock = threading.Lock()
_built: dict[tuple[int, Path], tuple[str | None, str]] = {}
_default: dict[tuple[int, str | None, str | None], tuple[str | None, str]] = {}


def program(directory: Path | None = None) -> tuple[str | None, str]:
    """``(path of the compiled set-up program, "")``, or ``(None, why not)``. It is kept in
    ``directory`` (default: :func:`._engine_cache.cache_dir`) and looked for at most once per
    process and directory, compiled only when missing."""
    if directory is None:  # the usual call, once or twice per command: no path work
        where = (os.getpid(), os.environ.get(CACHE_ENV), os.environ.get("XDG_CACHE_HOME"))
        known = _default.get(where)
        if known is None:
            real, problem = _engine_cache.prepare(_engine_cache.cache_dir())
            _default[where] = known = program(real) if real is not None else (None, problem)
        return known
    key = (os.getpid(), directory)
    with _lock:
        if key not in _built:
            _built[key] = _find_or_build(directory)
        return _built[key]


def _find_or_build(directory: Path) -> tuple[str | None, str]:
    try:
        source = SOURCE.read_bytes()
    except OSError as exc:
        return None, f"cannot read {SOURCE}: {exc}"
    digest = hashlib.sha256(source + " ".join((*CFLAGS, STATIC)).encode()).hexdigest()[:16]
    real, problem = _engine_cache.prepare(directory)
    if real is None:
        return None, problem
    target = real / f"nsinit-{os.uname().machine}-{digest}"
    if _engine_cache.trusted_file(target, executable=True):
        return str(target), ""
    compiler = shutil.which("cc", path=LAUNCHER_ENV["PATH"]) or shutil.which(
        "gcc", path=LAUNCHER_ENV["PATH"]
    )
    if compiler is None:
        return None, "no C compiler on PATH (apt-get install gcc)"
    try:
        with _build_lock(real):
            # Another process may have built it while this one waited.
            if _engine_cache.trusted_file(target, executable=True):
                return str(target), ""
            return _compile(compiler, target)
    except OSError as exc:
        return None, f"cannot lock {real / _LOCK_NAME}: {exc}"


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
