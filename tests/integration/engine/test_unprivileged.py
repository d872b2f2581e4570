"""The engine as an unprivileged user: no cgroups, so limits fall back to rlimits.

The test switches to uid 65534 (``setpriv``) and runs the engine with the system's Python and
this project's packages; it needs root to switch, and a system Python of the same minor version
as the one the packages were installed for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest

from tests.conftest import require
from tests.integration.engine.conftest import require_backend

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
NOBODY = 65534

SCRIPT = """
import json, os, sys
from pytest_cleanroom import Cleanroom, Policy, cgroups
MiB = 1024 * 1024
policy = Policy.level("locked").replace(max_processes=30, memory_limit=200 * MiB, timeout=20)
out = {"uid": os.getuid(), "cgroups": cgroups.parents() is not None}
with Cleanroom(sys.argv[1], policy=policy, backend=sys.argv[2]) as room:
    hello = room.run("id -u; echo hi > f; cat f")
    out["hello"] = [hello.exit_code, hello.stdout, hello.peak_memory is not None]
    bomb = room.run("bomb() { bomb | bomb & }; bomb; sleep 1")
    out["bomb"] = ["Cannot fork" in bomb.stderr, bomb.timed_out]
    hog = room.run(["python3", "-c", "x = bytearray(500 * 1024 * 1024)"])
    out["hog"] = [hog.exit_code, "MemoryError" in hog.stderr]
print(json.dumps(out))
"""


@pytest.fixture
def home() -> Iterator[Path]:
    """A directory the unprivileged user owns (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="cleanroom-unprivileged-"))
    path.chmod(0o755)
    (path / "ws").mkdir()
    os.chown(path / "ws", NOBODY, NOBODY)
    yield path
    shutil.rmtree(path)


def test_rlimit_fallback_as_an_unprivileged_user(home: Path, backend: str) -> None:
    require_backend(backend)
    require(os.geteuid() == 0, "root, to switch to an unprivileged user with setpriv")
    setpriv = shutil.which("setpriv")
    require(setpriv is not None, "setpriv (util-linux) on PATH")
    system_python = "/usr/bin/python3"
    version = subprocess.run(
        [system_python, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    require(
        version == str(tuple(sys.version_info[:2])),
        f"{system_python} of Python {sys.version_info[0]}.{sys.version_info[1]} "
        f"(it is {version or 'missing'})",
    )
    site_packages = Path(pydantic.__file__).resolve().parents[1]
    assert setpriv is not None
    done = subprocess.run(
        [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         "env", "-i", "PATH=/usr/bin:/bin", f"PYTHONPATH={REPO / 'src'}:{site_packages}",
         system_python, "-c", SCRIPT, str(home / "ws"), backend],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["uid"] == NOBODY
    assert out["cgroups"] is False
    assert out["hello"] == [0, "0\nhi\n", True]  # uid 0 inside, mapped to nobody outside
    assert out["bomb"][0], "RLIMIT_NPROC did not stop the fork bomb from growing"
    assert out["hog"] == [1, True]
