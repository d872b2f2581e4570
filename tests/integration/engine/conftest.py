"""Fixtures of the engine's integration tests: real sandboxes on this machine's backends."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.backends import backend_problem
from tests.conftest import require

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
