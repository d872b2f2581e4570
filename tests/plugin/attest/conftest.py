"""Helpers for driving the attest plugin through pytester."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_cleanroom.attest import dsse
from tests.conftest import require


@pytest.fixture(scope="session")
def sandbox() -> None:
    """The inner runs sandbox real commands: a namespace backend must exist."""
    require(
        shutil.which("bwrap") is not None or shutil.which("unshare") is not None,
        "bubblewrap or util-linux unshare (apt-get install bubblewrap)",
    )


def basetemp_of(cwd: Path) -> Path:
    """The base temporary directory of :func:`run_pytest`'s run in ``cwd`` (its tests'
    workspaces): beside ``cwd``, in this run's own temporary directory. Under pytest's default,
    ``/tmp/pytest-of-USER/pytest-N``, any concurrent pytest of the same user may delete it once
    the inner run has ended (it keeps only the newest few)."""
    return cwd.parent / f"{cwd.name}-basetemp"


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A separate pytest in ``cwd`` (for results shared by a module's tests, which pytester's
    function-scoped fixture cannot give); the outer run's PYTEST_* variables are not passed on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE"))}
    basetemp = f"--basetemp={basetemp_of(cwd)}"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", basetemp, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def statement_of(path: Path) -> dict[str, Any]:
    """The Statement inside an envelope file (parsed strictly, signature not checked here)."""
    data: dict[str, Any] = json.loads(dsse.parse_envelope(path.read_bytes()).payload)
    return data


def envelopes_by_nodeid(directory: Path) -> dict[str, Path]:
    """``{nodeid: envelope path}`` of every per-test envelope in ``directory``."""
    found = {}
    for path in sorted(directory.glob("*.intoto.json")):
        if path.name != "run.intoto.json":
            nodeid = statement_of(path)["predicate"]["buildDefinition"]["externalParameters"][
                "test"
            ]
            found[nodeid] = path
    return found
