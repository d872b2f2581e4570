"""Fixtures of the engine's integration tests: real sandboxes on this machine's backends."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.backends import backend_problem
from tests.conftest import require

REPO = Path(__file__).resolve().parents[3]
LOCAL_BACKENDS = ("bwrap", "unshare")
_HINTS = {
    "bwrap": "apt-get install bubblewrap",
    "unshare": "apt-get install util-linux",
}


def require_backend(name: str) -> None:
    """Skip locally / fail in CI when backend ``name`` cannot run here, saying why."""
    __tracebackhide__ = True
    if name == "bwrap":
        require(shutil.which("bwrap") is not None, f"bwrap not on PATH ({_HINTS['bwrap']})")
    problem = backend_problem(name)
    require(problem is None, f"cleanroom backend {name!r} unusable here: {problem}")


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def assert_dies_with_the_engine(script: str, *args: str) -> None:
    """Run ``script`` (it prints a PID, then waits) in an engine process, kill the engine and
    assert that the process it named exits within 10 seconds."""
    __tracebackhide__ = True
    engine = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert engine.stdout is not None
    line = engine.stdout.readline()
    assert line, f"the engine printed no PID (exit status {engine.wait()})"
    pid = int(line)
    assert alive(pid)
    engine.kill()
    engine.wait()
    end = time.monotonic() + 10
    while alive(pid):
        assert time.monotonic() < end, f"process {pid} outlived the engine"
        time.sleep(0.01)


@pytest.fixture(params=LOCAL_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each local backend in turn."""
    name: str = request.param
    require_backend(name)
    return name


@pytest.fixture
def room(tmp_path: Path, backend: str) -> Iterator[Cleanroom]:
    """A ``standard`` cleanroom on a fresh workspace, for each local backend."""
    with Cleanroom(tmp_path / "ws", backend=backend, seed=1234) as cleanroom:
        yield cleanroom
