"""cgroup v2 as the VM shows it, run as root and as an unprivileged user with a systemd user
session (delegation): limits hold for the whole process tree and every record says cgroup2."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy, cgroups

MiB = 1024 * 1024
SMALL = Policy.level("locked").replace(memory_limit=64 * MiB, max_processes=20, timeout=60)
# Two processes of 40 MiB each (written: untouched memory is not charged): only a limit on the
# whole tree sees the 80 MiB.
TWO = """
import subprocess, sys
child = "import time; x = b'y' * (40 << 20); time.sleep(3)"
children = [subprocess.Popen([sys.executable, "-c", child]) for _ in range(2)]
sys.exit(max(c.wait() for c in children))
"""
HOG = ["python3", "-c", "x = b'x' * (200 << 20)"]  # written: a bytearray would stay unbacked


@pytest.mark.parametrize("backend", ["bwrap", "unshare"])
def test_limits_hold_for_the_whole_tree(tmp_path: Path, backend: str) -> None:
    assert cgroups.parents() is not None, cgroups.why_unavailable()
    with Cleanroom(tmp_path / "ws", policy=SMALL, backend=backend) as room:
        hog = room.run(HOG)
        bomb = room.run("bomb() { bomb | bomb & }; bomb; sleep 30", timeout=50)
        two = room.run(["python3", "-c", TWO])
    assert hog.limits_enforcement == "cgroup2"
    assert hog.policy_name == SMALL.name  # nothing weakened, nothing to name
    assert hog.limit_exceeded == "memory", hog.describe()
    assert bomb.limit_exceeded == "processes", bomb.describe()
    assert two.limit_exceeded == "memory", two.describe()
