"""Whether the local backends can create their namespaces on this machine, probed once per process.

Kept free of pydantic and of the engine so that the pytest plugin's report header can name the
backend ``auto``/``local`` will use without paying for either; the backends' own ``check`` calls
the same probes, so the engine never runs them twice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Sequence

from ..environment import FIXED_PATH

BWRAP_INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"
)
UTIL_LINUX_INSTALL_HINT = "install util-linux (Debian/Ubuntu: apt-get install util-linux)"
BWRAP_MISSING = f"the bwrap backend needs bubblewrap: {BWRAP_INSTALL_HINT}"
UNSHARE_MISSING = f"the unshare backend needs util-linux: {UTIL_LINUX_INSTALL_HINT}"
SETPRIV_MISSING = f"the unshare backend needs util-linux setpriv: {UTIL_LINUX_INSTALL_HINT}"
_USERNS_HINT = (
    "user namespaces may be disabled: sysctl kernel.unprivileged_userns_clone=1 / "
    "user.max_user_namespaces>0"
)
#: Ubuntu 23.10+ (AppArmor): 1 when unprivileged programs without a profile allowing ``userns``
#: may not create user namespaces with capabilities.
APPARMOR_USERNS_KNOB = "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"
_NAMESPACES = ["--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]

_lock = threading.Lock()
_probes: dict[tuple[str, ...], str | None] = {}
_programs: dict[tuple[str, str], str] = {}


def find_program(name: str) -> str | None:
    """``shutil.which(name)``, remembered per ``PATH`` while the file found stays executable:
    each cleanroom and command asks for the same few programs (bwrap, setpriv, unshare)."""
    key = (name, os.environ.get("PATH", os.defpath))
    path = _programs.get(key)
    if path is not None and os.access(path, os.X_OK):
        return path
    path = shutil.which(name)
    if path is None:
        _programs.pop(key, None)
    else:
        _programs[key] = path
    return path


def _run_probe(key: tuple[str, ...], argv: list[str]) -> tuple[int, str] | str:
    """``(exit code, stderr)`` of ``argv``, or why it could not be run."""
    try:
        done = subprocess.run(
            argv, capture_output=True, timeout=30, check=False, env={"PATH": FIXED_PATH}
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{key[1]} could not be run: {exc}"
    return done.returncode, done.stderr.decode(errors="replace").strip()


#: bwrap's words when a mount under ``/`` went away while it bound ``/`` recursively (another
#: program, e.g. a container engine, unmounted it): a moment's race, not a missing feature.
_MOUNT_RACE = ("Can't bind mount", "Unable to apply mount flags: remount")
_MOUNT_RACE_TRIES = 5


def _probe_bwrap_retrying(key: tuple[str, ...], argv: list[str]) -> tuple[int, str] | str:
    """``_run_probe``, tried again (up to ``_MOUNT_RACE_TRIES`` in all) while it fails only
    because a mount vanished under it."""
    for _ in range(_MOUNT_RACE_TRIES):
        outcome = _run_probe(key, argv)
        if isinstance(outcome, str) or outcome[0] == 0:
            return outcome
        if not all(words in outcome[1] for words in _MOUNT_RACE):
            return outcome
    return outcome


def _no_namespaces(path: str, stderr: str, prefix: Sequence[str] = ()) -> str:
    who = f" as the sandbox's unprivileged user ({' '.join(prefix)})" if prefix else ""
    return f"{path} cannot create namespaces here{who}: {stderr} ({userns_hint(path)})"


def userns_hint(program: str, knob: str = APPARMOR_USERNS_KNOB) -> str:
    """What may forbid ``program``'s user namespaces here, and the fix: AppArmor's restriction
    when ``knob`` says it is on (Ubuntu 23.10+), else the sysctls that disable them."""
    try:
        with open(knob) as f:
            restricted = f.read().strip() == "1"
    except OSError:
        restricted = False
    if not restricted:
        return _USERNS_HINT
    return (
        "AppArmor restricts unprivileged user namespaces here "
        "(kernel.apparmor_restrict_unprivileged_userns=1, Ubuntu 23.10 and later): load an "
        f"AppArmor profile that allows 'userns' for {program} (see docs/platforms.md; Ubuntu "
        "ships one for bwrap as /usr/share/apparmor/extra-profiles/bwrap-userns-restrict), "
        "which keeps the restriction for every other program, or lift it for all with "
        "sysctl kernel.apparmor_restrict_unprivileged_userns=0"
    )


def probe_bwrap(path: str, *, disable_userns: bool, prefix: Sequence[str] = ()) -> str | None:
    """``None`` if bwrap can create the namespaces the engine uses here (run after ``prefix``:
    as another user), else why not."""
    key = ("bwrap", path, str(disable_userns), *prefix)
    with _lock:
        if key not in _probes:
            extra = ["--disable-userns"] if disable_userns else []
            argv = [*prefix, path, *_NAMESPACES, *extra, "--ro-bind", "/", "/", "--proc",
                    "/proc", "--dev", "/dev", "--", "true"]  # fmt: skip
            outcome = _probe_bwrap_retrying(key, argv)
            if isinstance(outcome, str):
                _probes[key] = outcome
            elif outcome[0] == 0:
                _probes[key] = None
            elif disable_userns and "--disable-userns" in outcome[1]:
                _probes[key] = (
                    f"{path} cannot forbid nested user namespaces (bubblewrap 0.8 or later "
                    "has --disable-userns): upgrade bubblewrap, use the unshare backend, or "
                    "set nested_user_namespaces=True"
                )
            else:
                _probes[key] = _no_namespaces(path, outcome[1], prefix)
        return _probes[key]


def kernel_at_least(major: int, minor: int) -> bool:
    """Whether the running Linux kernel is at least ``major.minor``."""
    release = os.uname().release.split("-")[0].split(".")
    try:
        return (int(release[0]), int(release[1])) >= (major, minor)
    except (IndexError, ValueError):
        return False


def probe_unshare(path: str, prefix: Sequence[str] = ()) -> str | None:
    """``None`` if util-linux unshare can create the namespaces the engine uses (run after
    ``prefix``: as another user), else why not."""
    key = ("unshare", path, *prefix)
    with _lock:
        if key not in _probes:
            argv = [*prefix, path, "--user", "--map-root-user", "--mount", "--pid", "--fork",
                    "--net", "--ipc", "--uts", "true"]  # fmt: skip
            outcome = _run_probe(key, argv)
            if isinstance(outcome, str):
                _probes[key] = outcome
            else:
                _probes[key] = None if outcome[0] == 0 else _no_namespaces(path, outcome[1], prefix)
        return _probes[key]


def bwrap_problem(*, nested_user_namespaces: bool) -> str | None:
    """Why the bwrap backend cannot isolate here (``None``: it can), limits aside."""
    path = find_program("bwrap")
    if path is None:
        return BWRAP_MISSING
    problem = probe_bwrap(path, disable_userns=False)
    if problem is None and not nested_user_namespaces:
        problem = probe_bwrap(path, disable_userns=True)
    return problem


def unshare_problem() -> str | None:
    """Why the unshare backend cannot isolate here (``None``: it can), limits aside."""
    path = find_program("unshare")
    if path is None:
        return UNSHARE_MISSING
    if find_program("setpriv") is None:
        return SETPRIV_MISSING
    if not kernel_at_least(5, 12):
        return (
            f"the unshare backend needs Linux 5.12 or later (this is {os.uname().release}); "
            "install bubblewrap to use the bwrap backend instead"
        )
    return probe_unshare(path)


def first_local_backend(*, nested_user_namespaces: bool) -> tuple[str | None, list[str]]:
    """The first local backend (bwrap, then unshare) that can create its namespaces here, and
    why each one before it could not."""
    reasons: list[str] = []
    why = bwrap_problem(nested_user_namespaces=nested_user_namespaces)
    if why is None:
        return "bwrap", reasons
    reasons.append(f"bwrap: {why}")
    why = unshare_problem()
    if why is None:
        return "unshare", reasons
    reasons.append(f"unshare: {why}")
    return None, reasons
