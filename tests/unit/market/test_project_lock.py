"""The project lock: exclusive between processes, and compatible with the ``filelock`` package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ggen_market import install
from ggen_market.config import MarketConfig
from ggen_market.errors import InstallError
from ggen_market.fsutil import LockTimeoutError, exclusive_lock

HOLDER = """
import sys, time
from filelock import FileLock
with FileLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


def _hold(path: Path) -> subprocess.Popen[str]:
    """Another process holding ``path`` through filelock (the lock other tools may take)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "held\n"
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


def test_a_lock_held_elsewhere_times_out_then_is_acquired(tmp_path: Path) -> None:
    path = tmp_path / ".lock"
    holder = _hold(path)
    try:
        with pytest.raises(LockTimeoutError), exclusive_lock(path, timeout=0.2):
            pytest.fail("acquired a lock another process holds")
    finally:
        _release(holder)
    entered = []
    with exclusive_lock(path, timeout=5):
        entered.append(True)
    assert entered == [True]
    with exclusive_lock(path, timeout=5):  # released on exit: taken again at once
        pass


def test_add_waiting_for_another_ggen_fails_clearly_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / ".ggen").mkdir(parents=True)
    holder = _hold(project / ".ggen" / ".lock")
    monkeypatch.setattr(install, "LOCK_TIMEOUT", 0.2)
    config = MarketConfig(registries=(), cache_dir=tmp_path / "cache", timeout=1.0)
    try:
        with pytest.raises(InstallError, match=r"another ggen is changing this project"):
            install.Project(project, config).add(["io.any.pack"])
    finally:
        _release(holder)
    assert sorted(p.name for p in (project / ".ggen").iterdir()) == [".lock"]
    assert not (project / "ggen.lock").exists()
