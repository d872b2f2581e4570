"""Item 2 of the hardening: whatever its level, a command reaches no cgroup but its own subtree.

Where nested user namespaces are allowed (``permissive``, ``standard``) a command can mount
cgroupfs in user + mount + cgroup namespaces of its own; the mounts must show its own cgroup
(the root of its cgroup namespace) and nothing above it: not the foreign group this test makes
next to the engine's, holding a host process, in every hierarchy; not the group whose limits
bind it. Under ``strict``/``locked`` the same probes must simply fail.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy, cgroups
from pytest_cleanroom.policy import LEVELS, MiB
from pytest_cleanroom.testing import probes
from tests.conftest import require
from tests.security import ns_probes
from tests.security.backends import require_backend

pytestmark = pytest.mark.integration

BACKENDS = ["bwrap", "unshare"]


@pytest.fixture
def foreign() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A cgroup next to the engine's in every hierarchy, holding a host process."""
    parents = cgroups.parents()
    require(parents is not None, f"writable cgroups ({cgroups.why_unavailable()})")
    assert parents is not None
    name = f"cleanroom-foreign-{uuid.uuid4().hex[:12]}"
    victim = subprocess.Popen(["sleep", "300"])
    made = []
    try:
        for hierarchy, parent in parents.items():
            group = parent.parent / name
            group.mkdir()
            made.append(group)
            if "cpuset" in hierarchy.split(","):
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    (group / knob).write_text((parent.parent / knob).read_text())
            (group / "cgroup.procs").write_text(str(victim.pid))
        yield name, victim
    finally:
        victim.kill()
        victim.wait()
        for group in made:
            group.rmdir()


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_no_cgroup_outside_its_own_is_visible_or_writable(
    tmp_path: Path, backend: str, level: str, foreign: tuple[str, subprocess.Popen[bytes]]
) -> None:
    require_backend(backend)
    name, victim = foreign
    with Cleanroom(tmp_path / "ws", policy=level, backend=backend) as room:
        result = room.run(["python3", "-c", ns_probes.CGROUPS, name])
    if result.exit_code == probes.ESCAPED:
        pytest.fail(f"cgroup escape on {backend} under {level}: {result.stdout}")
    assert result.exit_code == probes.BLOCKED, result.describe()
    assert victim.poll() is None


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_command_cannot_raise_its_own_memory_limit(
    tmp_path: Path, backend: str, level: str
) -> None:
    require_backend(backend)
    require(cgroups.parents() is not None, f"writable cgroups ({cgroups.why_unavailable()})")
    policy = Policy.level(level).replace(memory_limit=64 * MiB, timeout=60.0)
    with Cleanroom(tmp_path / "ws", policy=policy, backend=backend) as room:
        result = room.run(["python3", "-c", ns_probes.RAISE_OWN_LIMITS, "300"])
    assert result.exit_code != probes.ESCAPED, result.describe()
    result.assert_limit_exceeded("memory")
