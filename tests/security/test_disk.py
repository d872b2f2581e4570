"""``max_disk`` bounds the private /tmp and /dev/shm together, on every level, and a command
that fills them ends with the ``disk`` limit; /dev itself takes no data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.policy import LEVELS, MiB
from tests.security import ns_probes
from tests.security.backends import require_backend

pytestmark = pytest.mark.integration

BUDGET = 16 * MiB


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("backend", ["bwrap", "unshare"])
def test_tmp_and_shm_share_max_disk(tmp_path: Path, backend: str, level: str) -> None:
    require_backend(backend)
    policy = Policy.level(level).replace(max_disk=BUDGET, memory_limit=None)
    with Cleanroom(tmp_path / "ws", policy=policy, backend=backend) as room:
        result = room.run(["python3", "-c", ns_probes.FILL_SCRATCH])
    took = {line.split()[0]: int(line.split()[1]) for line in result.stdout.splitlines()}
    assert took["/tmp/fill"] + took["/dev/shm/fill"] <= BUDGET, result.describe()
    assert took["/tmp/fill"] >= BUDGET // 2  # the budget is really there to use
    assert took["/dev/fill"] == 0
    if os.geteuid() == 0:  # the engine mounts the tmpfs itself and sees it filled
        result.assert_limit_exceeded("disk")
