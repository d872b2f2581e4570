"""The engine and the pytest plugin as an unprivileged user: no cgroup, so memory and CPU time can
only be held per process. That is refused with the fix unless opted in, and then named so in
every record; the rlimits hold what they can (processes, memory per process) without breaking
runtimes that reserve address space (a JVM).

The tests switch to uid 65534 (``setpriv``) and run the system's Python with this project's
packages; they need root to switch, and a system Python of the same minor version as the one
the packages were installed for.
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

from pytest_cleanroom import Policy
from tests.conftest import require
from tests.integration.engine.conftest import require_backend

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"
MiB = 1024 * 1024
POLICY = Policy.level("locked").replace(max_processes=30, memory_limit=200 * MiB, timeout=20)

SCRIPT = """
import json, os, sys
from pytest_cleanroom import Cleanroom, Policy, cgroups
from pytest_cleanroom.errors import TreeLimitsError
policy = Policy.model_validate_json(sys.argv[3])
out = {"uid": os.getuid(), "cgroups": cgroups.parents() is not None}
try:
    Cleanroom(sys.argv[1] + "/refused", policy=policy, backend=sys.argv[2])
except TreeLimitsError as exc:
    out["refused"] = str(exc)
with Cleanroom(sys.argv[1] + "/ws", policy=policy, backend=sys.argv[2],
               per_process_limits=True) as room:
    hello = room.run("id -u; echo hi > f; cat f")
    out["hello"] = [hello.exit_code, hello.stdout, hello.peak_memory is not None]
    out["record"] = [hello.policy_name, hello.policy_digest, hello.limits_enforcement]
    bomb = room.run("bomb() { bomb | bomb & }; bomb; sleep 1")
    out["bomb"] = ["Cannot fork" in bomb.stderr, bomb.timed_out]
    hog = room.run(["python3", "-c", "x = bytearray(500 * 1024 * 1024)"])
    out["hog"] = [hog.exit_code, "MemoryError" in hog.stderr]
    reserve = room.run(["python3", "-c", "import mmap; m = mmap.mmap(-1, 8 << 30, prot=0)"])
    out["reserve"] = reserve.exit_code
java = None
if os.path.exists("/usr/bin/java"):  # the level as it is: 1 GiB, more than the JVM's first heap
    with Cleanroom(sys.argv[1] + "/ws", policy="locked", backend=sys.argv[2],
                   per_process_limits=True) as room:
        java = room.run(["java", "-version"])
out["java"] = None if java is None else [java.exit_code, java.stderr[-300:]]
print(json.dumps(out))
"""

SUITE = """
def test_one(cleanroom):
    cleanroom.run(["true"]).assert_success()
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


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    """Run the system Python with ``argv`` as uid 65534, this project's packages importable."""
    require(os.geteuid() == 0, "root, to switch to an unprivileged user with setpriv")
    setpriv = shutil.which("setpriv")
    require(setpriv is not None, "setpriv (util-linux) on PATH")
    version = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    require(
        version == str(tuple(sys.version_info[:2])),
        f"{SYSTEM_PYTHON} of Python {sys.version_info[0]}.{sys.version_info[1]} "
        f"(it is {version or 'missing'})",
    )
    site_packages = Path(pydantic.__file__).resolve().parents[1]
    assert setpriv is not None
    return subprocess.run(
        [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
         "env", "-i", "PATH=/usr/bin:/bin", f"PYTHONPATH={REPO / 'src'}:{site_packages}",
         "PYTHONDONTWRITEBYTECODE=1", SYSTEM_PYTHON, *argv],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )  # fmt: skip


def test_per_process_limits_as_an_unprivileged_user(home: Path, backend: str) -> None:
    require_backend(backend)
    done = as_nobody("-c", SCRIPT, str(home / "ws"), backend, POLICY.model_dump_json())
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["uid"] == NOBODY
    assert out["cgroups"] is False
    # Refused without the opt-in, naming the limits and every way out.
    for part in ("memory_limit=209715200", "cpu_time_limit=60.0", "whole process tree",
                 "--cleanroom-per-process-limits", "per_process_limits=True"):  # fmt: skip
        assert part in out["refused"]
    # With it, every result names the weaker policy: not what root's cgroups enforce.
    name, digest, enforcement = out["record"]
    assert name == f"{POLICY.name}+per_process_limits"
    assert digest == POLICY.replace(per_process_limits=True).digest() != POLICY.digest()
    assert enforcement == "rlimit"
    # uid 0 inside, mapped to nobody outside; its peak memory measured where the sandbox tool's
    # rusage holds the command's (bubblewrap's never does: unmeasured, see test_limits.py)
    assert out["hello"] == [0, "0\nhi\n", backend != "bwrap"]
    assert out["bomb"][0], "RLIMIT_NPROC did not stop the fork bomb from growing"
    assert out["hog"] == [1, True]
    assert out["reserve"] == 0, "an 8 GiB PROT_NONE reservation counted as memory use"
    if out["java"] is not None:  # the JVM reserves its heap up front: RLIMIT_AS broke it
        assert out["java"][0] == 0, out["java"][1]


def test_pytest_as_an_unprivileged_user(home: Path) -> None:
    require_backend("bwrap")
    suite = home / "suite"
    suite.mkdir()
    (suite / "test_it.py").write_text(SUITE)
    os.chown(suite, NOBODY, NOBODY)
    common = ["-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(suite),
              "--basetemp", str(suite / "tmp"), "--cleanroom-policy=strict",
              "--cleanroom-backend=local", str(suite)]  # fmt: skip
    refused = as_nobody(*common)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "cannot hold memory_limit=2147483648 and cpu_time_limit=300.0" in refused.stdout
    assert "--cleanroom-per-process-limits" in refused.stdout
    header = [line for line in refused.stdout.splitlines() if line.startswith("cleanroom:")]
    assert header[0].startswith("cleanroom: policy=strict backend=local UNAVAILABLE")
    assert "no cgroup for its commands (cgroups need root" in "\n".join(header)

    report = suite / "report.json"
    allowed = as_nobody(*common, "--cleanroom-per-process-limits", f"--cleanroom-report={report}")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert (
        "cleanroom: limits held by rlimit, per process, opted in by "
        "--cleanroom-per-process-limits" in allowed.stdout
    )
    assert "commands record policy strict+per_process_limits" in allowed.stdout
    [command] = json.loads(report.read_text())["commands"]
    assert command["policy"] == "strict+per_process_limits"
    assert (
        command["policy_digest"] == Policy.level("strict").replace(per_process_limits=True).digest()
    )
    assert command["limits_enforcement"] == "rlimit"
