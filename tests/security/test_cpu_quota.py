"""The shipped CPU quota check of :mod:`pytest_cleanroom.testing.conformance.test_cpu_quota`,
against every backend of this project, each of which must enforce the quota (not refuse it) where
cgroups work; refused with the reason where they do not; part of the policy digest."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom.engine import Cleanroom
from pytest_cleanroom.errors import BackendUnavailableError
from pytest_cleanroom.policy import Policy
from pytest_cleanroom.testing.conformance.test_cpu_quota import *  # noqa: F403
from pytest_cleanroom.testing.conformance.test_cpu_quota import (
    QUOTA,
    assert_within_quota,
    run_busy_tree,
)


def test_every_backend_here_enforces_the_quota(backend: str, tmp_path: Path) -> None:
    result = run_busy_tree(tmp_path, backend)
    assert_within_quota(result)
    assert (
        result.policy_digest
        == Policy.level("standard").replace(cpu_quota=QUOTA, timeout=3.0).digest()
    )
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


pytestmark = pytest.mark.integration
