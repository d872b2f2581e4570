"""``max_disk`` bounds the private /tmp and /dev/shm together, on every level, and a command
that fills them ends with the ``disk`` limit; /dev itself takes no data. On docker the same
tmpfs is bound into the container (Docker's own /dev/shm and /tmp would be sized by memory)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.containers import engine as ds
from pytest_cleanroom.policy import LEVELS, MiB
from tests.security import ns_probes

pytestmark = pytest.mark.integration

BUDGET = 16 * MiB


def _engine_mounts_the_scratch(backend: str) -> bool:
    """Whether the engine mounts the shared tmpfs itself (and so sees it filled)."""
    if os.geteuid() != 0:
        return False
    return backend != "docker" or ds.engine_shares_our_mounts(ds.docker_host())


@pytest.mark.parametrize("level", LEVELS)
def test_tmp_and_shm_share_max_disk(tmp_path: Path, backend: str, level: str) -> None:
    policy = Policy.level(level).replace(max_disk=BUDGET, memory_limit=None)
    with Cleanroom(tmp_path / "ws", policy=policy, backend=backend) as room:
        result = room.run(["python3", "-c", ns_probes.FILL_SCRATCH])
    took = {line.split()[0]: int(line.split()[1]) for line in result.stdout.splitlines()}
    assert took["/tmp/fill"] + took["/dev/shm/fill"] <= BUDGET, result.describe()
    assert took["/tmp/fill"] >= BUDGET // 2  # the budget is really there to use
    assert took["/dev/fill"] == 0
    if _engine_mounts_the_scratch(backend):
        result.assert_limit_exceeded("disk")
