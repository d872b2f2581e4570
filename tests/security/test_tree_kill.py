"""Item 4 of the hardening: a command's whole tree ends with it, at every level.

A daemon leaves the command's process tree (double fork, new session) and, where it can (nested
user namespaces: ``permissive``, ``standard``), hides in a cgroup it makes below its own. Once
the command's result is known, nothing of it may be left running, and its cgroups are removed
with the cleanroom.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy, cgroups
from pytest_cleanroom.policy import LEVELS
from pytest_cleanroom.testing.leftovers import (
    MARKER_VARIABLE,
    busy_cgroups_of_process,
    processes_with_marker,
)
from tests.conftest import require
from tests.security import ns_probes
from tests.security.backends import require_backend

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("backend", ["bwrap", "unshare"])
def test_a_daemon_hiding_in_a_child_cgroup_dies_with_its_command(
    tmp_path: Path, backend: str, level: str
) -> None:
    require_backend(backend)
    require(cgroups.parents() is not None, f"writable cgroups ({cgroups.why_unavailable()})")
    policy = Policy.level(level)
    marker = uuid.uuid4().hex
    with Cleanroom(tmp_path / "ws", policy=policy, backend=backend) as room:
        result = room.run(
            ["python3", "-c", ns_probes.HIDE_IN_CHILD_CGROUP], env={MARKER_VARIABLE: marker}
        )
        result.assert_success()
        hidden = "hidden\n" if policy.nested_user_namespaces else "not hidden\n"
        assert result.stdout == hidden  # the attack itself worked where it can
        assert processes_with_marker(marker) == []
    assert busy_cgroups_of_process(os.getpid()) == []
