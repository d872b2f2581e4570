"""The backends the security suite attacks, listed in one place."""

from __future__ import annotations

import importlib.util
import shutil

from pytest_cleanroom.backends import backend_problems
from tests.conftest import require

#: Every backend the escape suite runs against. Add a backend here and it gets every probe.
SECURITY_BACKENDS: tuple[str, ...] = ("bwrap", "unshare", "docker")

_HINTS = {
    "bwrap": "apt-get install bubblewrap",
    "unshare": "apt-get install util-linux",
    "docker": "scripts/setup.sh --docker, then start the engine with scripts/docker-engine.sh",
}


def require_backend(name: str) -> None:
    """Skip locally / fail in CI, saying exactly why, when ``name`` cannot run here."""
    __tracebackhide__ = True
    if name == "bwrap":
        require(shutil.which("bwrap") is not None, f"bwrap not on PATH ({_HINTS['bwrap']})")
    if name == "docker":
        require(
            importlib.util.find_spec("pytest_cleanroom.backends.docker") is not None,
            "the docker backend (pytest_cleanroom/backends/docker.py) is not written yet",
        )
    problem = backend_problems().get(name)
    require(
        problem is None, f"cleanroom backend {name!r} unusable here: {problem} ({_HINTS[name]})"
    )
