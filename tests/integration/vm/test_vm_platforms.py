"""cgroup v2 in a real machine: the Debian 12 VM of scripts/test-vm.sh runs tests/vm as root
(cgroup v2 at the root, a container's cgroup namespace) and as a user with a systemd session
(delegation). This machine mounts cgroup v1, so only the VM shows these platforms."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
PYTEST = [".venv/bin/python", "-m", "pytest", "-p", "no:cacheprovider", "-q", "-x"]


def in_vm(*options: str, tests: list[str]) -> subprocess.CompletedProcess[str]:
    require(os.geteuid() == 0, "root, to build and boot the test VM")
    for tool in ("qemu-system-x86_64", "debootstrap", "debugfs"):
        require(shutil.which(tool) is not None, f"{tool} (scripts/setup.sh --vm)")
    return subprocess.run(
        ["scripts/test-vm.sh", "--timeout", "1500", *options, "--", *PYTEST, *tests],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


def test_cgroup2_as_root_and_in_a_container_namespace() -> None:
    done = in_vm(tests=["tests/vm/test_cgroup2_platforms.py", "tests/vm/test_container.py"])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout  # nothing skipped in there


def test_cgroup2_delegated_to_an_unprivileged_user() -> None:
    done = in_vm(
        "--user",
        "alice",
        tests=["tests/vm/test_cgroup2_platforms.py", "tests/vm/test_delegation.py"],
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout
