"""The ``unshare`` backend's set-up step as a native program: ``_nsinit.c``, compiled once.

The set-up step runs once per command; as a Python script it costs an interpreter start (tens
of milliseconds of CPU). ``_nsinit.c`` does the same steps in the same order; it is compiled
with the machine's C compiler on first use and kept in a per-user cache directory, under a name
that carries the digest of its source, so an edited source is compiled anew. Where no compiler
is found, or the cache cannot be made safe, the backend keeps the Python step (same result).

The program runs with the engine's privileges (as uid 0 of the command's user namespace, over
the host's files): the cache directory and the program must belong to this user and be
writable by no one else, all the way up, or they are not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import _seccomp
from ._handoff import LAUNCHER_ENV
from .base import CommandSpec
from .namespace.limits import Rlimits

SOURCE = Path(__file__).with_name("_nsinit.c")
#: Records of the program's plan: ``(tag, fields)``, see ``_nsinit.c``.
Records = list[tuple[str, Sequence[str]]]
#: Flags the program is compiled with (part of its cache key).
CFLAGS = ("-O2", "-std=gnu11")
#: Tried first: a static program starts without the dynamic loader's work, once per command.
STATIC = "-static"

_lock = threading.Lock()
_built: dict[tuple[int, Path], tuple[str | None, str]] = {}
_default: dict[tuple[int, str | None, str | None], tuple[str | None, str]] = {}


def program(directory: Path | None = None) -> tuple[str | None, str]:
    """``(path of the compiled set-up program, "")``, or ``(None, why not)``. It is kept in
    ``directory`` (default :func:`cache_dir`) and looked for at most once per process and
    directory, compiled only when missing."""
    if directory is None:  # the usual call, once or twice per command: no path work
        where = (os.getpid(), os.environ.get("XDG_CACHE_HOME"), os.environ.get("HOME"))
        known = _default.get(where)
        if known is not None:
            return known
        _default[where] = found = program(cache_dir())
        return found
    key = (os.getpid(), directory)
    with _lock:
        if key not in _built:
            _built[key] = _find_or_build(key[1])
        return _built[key]


def _find_or_build(directory: Path) -> tuple[str | None, str]:
    try:
        source = SOURCE.read_bytes()
    except OSError as exc:
        return None, f"cannot read {SOURCE}: {exc}"
    digest = hashlib.sha256(source + " ".join((*CFLAGS, STATIC)).encode()).hexdigest()[:16]
    problem = _unsafe(directory)
    if problem is not None:
        return None, problem
    target = directory / f"nsinit-{os.uname().machine}-{digest}"
    if _trusted_file(target):
        return str(target), ""
    compiler = shutil.which("cc", path=LAUNCHER_ENV["PATH"]) or shutil.which(
        "gcc", path=LAUNCHER_ENV["PATH"]
    )
    if compiler is None:
        return None, "no C compiler on PATH (apt-get install gcc)"
    return _compile(compiler, target)


def cache_dir() -> Path:
    """Where compiled set-up programs are kept: ``$XDG_CACHE_HOME/pytest-cleanroom`` (default
    ``~/.cache``), created private to this user."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pytest-cleanroom"


def _unsafe(directory: Path) -> str | None:
    """Why ``directory`` cannot hold a program this process runs (``None``: it can). Every
    directory above it must be root's or this user's and writable by no one else (or sticky,
    like ``/tmp``); it is then created private to this user, or must be so already."""
    me = os.geteuid()
    existing = directory.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    for path in (existing, *existing.resolve().parents):
        if path == directory.absolute():
            continue
        problem = _shared(path, owners=(0, me), sticky_ok=True)
        if problem is not None:
            return problem
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the cache directory {directory}: {exc}"
    return _shared(directory, owners=(me,), sticky_ok=False)


def _shared(path: Path, *, owners: tuple[int, ...], sticky_ok: bool) -> str | None:
    try:
        info = os.stat(path)
    except OSError as exc:
        return f"cannot inspect {path}: {exc}"
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


def encode_plan(records: Sequence[tuple[str, Sequence[str]]]) -> bytes:
    """The plan in the program's format: each record ``TAG\\0COUNT\\0FIELD\\0...``."""
    out = bytearray()
    for tag, fields in records:
        for part in (tag, str(len(fields)), *fields):
            encoded = os.fsencode(part)
            if b"\0" in encoded:
                raise ValueError(f"a NUL byte in the set-up plan's {tag} record: {part!r}")
            out += encoded + b"\0"
    return bytes(out)


def env_fields(env: Mapping[str, str]) -> list[str]:
    """``KEY=VALUE`` strings of ``env``, as ``execve`` takes them."""
    return [f"{key}={value}" for key, value in env.items()]


def command_records(spec: CommandSpec, rlimits: Rlimits | None) -> Records:
    """The set-up program's records about the command itself: limits, seccomp, what to run."""
    policy = spec.policy
    seccomp = _seccomp.program(
        policy.syscall_filter, forbid_namespaces=not policy.nested_user_namespaces
    )
    records: Records = []
    for name, soft, hard in rlimits.settings() if rlimits is not None else []:
        records.append(("rlimit", (name, str(soft), str(hard))))
    records += [
        ("cwd", (spec.cwd,)),
        ("seccomp", (seccomp.hex(),)),
        ("argv", spec.argv),
        ("env", env_fields(spec.env)),
    ]
    return records


def rlimit_values(rlimits: Rlimits | None) -> dict[str, int | list[int]]:
    """``rlimits`` by the names both set-up steps use (CPU time: ``[soft, hard]``)."""
    settings = rlimits.settings() if rlimits is not None else []
    return {name: soft if soft == hard else [soft, hard] for name, soft, hard in settings}
