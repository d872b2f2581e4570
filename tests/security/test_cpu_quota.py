"""``Policy.cpu_quota``: a busy process tree gets no more CPU than its quota, on every backend,
measured by the cgroup's own CPU counter (``RunResult.cpu_time``); where it cannot be enforced
the backend refuses, naming the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom.engine import Cleanroom
from pytest_cleanroom.errors import BackendUnavailableError
from pytest_cleanroom.policy import Policy

QUOTA = 0.05  # CPUs: 5 ms of CPU time per 100 ms period, whatever else the machine runs
#: Two busy shells (the quota covers the whole tree, not each process), ended by the timeout.
BUSY_TREE = ["/bin/sh", "-c", "sh -c 'while :; do :; done' & while :; do :; done"]


def test_a_busy_tree_gets_at_most_its_quota(backend: str, tmp_path: Path) -> None:
    policy = Policy.level("standard").replace(cpu_quota=QUOTA, timeout=3)
    with Cleanroom(tmp_path / "ws", policy=policy, backend=backend) as room:
        result = room.run(BUSY_TREE)
    assert result.timed_out, result.describe()
    assert result.cpu_time is not None
    assert result.cpu_time > 0
    # Generous: the quota allows QUOTA x wall time; half as much again, plus 50 ms of slack.
    assert result.cpu_time <= QUOTA * result.duration * 1.5 + 0.05, (
        f"{result.cpu_time:.3f} CPU seconds in {result.duration:.2f} s under cpu_quota={QUOTA}"
    )
    assert result.policy_name == "standard+cpu_quota+timeout"
    assert result.policy_digest == policy.digest()
    assert result.limits_enforcement in ("cgroup1", "cgroup2", "docker")


def test_the_quota_is_part_of_the_policy_digest() -> None:
    base = Policy.level("standard")
    assert base.replace(cpu_quota=0.5).digest() != base.digest()
    assert base.replace(cpu_quota=0.5).digest() != base.replace(cpu_quota=0.25).digest()
    assert base.tightened_by(base.replace(cpu_quota=0.5)).cpu_quota == 0.5
    assert base.replace(cpu_quota=2).tightened_by(base.replace(cpu_quota=0.5)).cpu_quota == 0.5


@pytest.mark.parametrize("name", ["bwrap", "unshare"])
def test_without_cgroups_a_local_backend_refuses_the_quota(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEANROOM_CGROUPS", "off")  # what a user without cgroup access has
    policy = Policy.level("standard").replace(
        cpu_quota=QUOTA, nested_user_namespaces=False, max_processes=None
    )
    with pytest.raises(BackendUnavailableError, match=r"cannot enforce cpu_quota=0\.05") as caught:
        Cleanroom(tmp_path / "ws", policy=policy, backend=name)
    assert "set cpu_quota=None" in str(caught.value)
    assert not (tmp_path / "ws").exists()  # refused before anything was made
