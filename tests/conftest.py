"""Shared test helpers: prerequisites are failures in CI and explained skips elsewhere."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

# One helper for prerequisites, shipped with the conformance suite.
from pytest_cleanroom.testing.prerequisites import IN_CI, require, require_binary

__all__ = ["IN_CI", "require", "require_binary"]


def pytest_configure() -> None:
    """Commands the tests start get SIGINT as a terminal's Ctrl-C reaches them.

    A shell without job control starts a background job (``pytest ... > log &``) with SIGINT
    ignored, every process inherits that across exec, and Python then installs no
    ``KeyboardInterrupt`` handler: each Ctrl-C test's ``ggen`` (or engine) ignored the SIGINT
    it was sent, ran its command to the end and the test timed out. Python's own handler here
    (reset to the default by exec in what the tests start) undoes that.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``where`` (created), unmounted afterwards: a disk that
    fills up for real (and see :func:`remount_read_only`)."""
    require(os.geteuid() == 0, "root, to mount a small tmpfs")
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=False
    )
    require(mounted.returncode == 0, "permission to mount a tmpfs (CAP_SYS_ADMIN)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def remount_read_only(where: Path) -> None:
    """Make the tmpfs at ``where`` (from :func:`small_tmpfs`) read-only."""
    subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


def ggen_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """Our environment without the caller's ``GGEN_*`` settings; with ``home``, a private ggen
    cache and no user configuration under it; ``extra`` on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GGEN_")}
    if home is not None:
        env.update(GGEN_CACHE_DIR=str(home / "cache"), GGEN_CONFIG=str(home / "none.toml"))
    return env | extra


def run_ggen(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m ggen_cli ARGS`` as a real process (``env``: default :func:`ggen_env`)."""
    return subprocess.run(
        [sys.executable, "-m", "ggen_cli", *args],
        cwd=cwd,
        env=ggen_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_doc_script(
    script: str, cwd: Path, *, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """A docs page's shell example as written: ``bash -euo pipefail`` in ``cwd``, with this
    interpreter's ``bin`` (``ggen``, ``pytest``) first on ``PATH``; ``env`` defaults to ours."""
    run_env = dict(os.environ if env is None else env)
    run_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{run_env.get('PATH', '')}"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# tests/vm runs inside the VM of scripts/test-vm.sh only (tests/integration/vm boots it).
collect_ignore = [] if os.environ.get("CLEANROOM_IN_TEST_VM") == "1" else ["vm"]
