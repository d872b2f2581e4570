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


BURN = [
    "python3",
    "-c",
    "import time; end = time.process_time() + 1\nwhile time.process_time() < end: pass",
]


@pytest.mark.parametrize("backend", ["bwrap", "unshare"])
def test_each_command_is_measured_alone(tmp_path: Path, backend: str) -> None:
    # cgroup v2 cannot reset a group's cpu.stat or memory.peak: a command in a group reused
    # from an earlier one must still be measured (and limited) on its own, not charged with
    # what the commands before it used.
    with Cleanroom(
        tmp_path / "ws", policy=SMALL.replace(memory_limit=256 * MiB), backend=backend
    ) as room:
        first = room.run(["python3", "-c", "x = b'x' * (150 << 20)"])
        burns = [room.run(BURN) for _ in range(2)]
        small = [room.run(["true"]) for _ in range(4)]  # in groups the pool hands back
    assert first.exit_code == 0, first.describe()
    assert (first.peak_memory or 0) > 150 * MiB, first.describe()
    for burn in burns:
        assert burn.exit_code == 0, burn.describe()
        assert (burn.cpu_time or 0) >= 1.0, burn.describe()
    for result in small:
        assert result.exit_code == 0, result.describe()
        assert result.peak_memory is not None, result.describe()
        assert result.peak_memory < 50 * MiB, result.describe()
        assert result.cpu_time is not None, result.describe()
        assert result.cpu_time < 1.0, result.describe()
