"""Under an isolated network (``strict``, ``locked``) the host's network interfaces are not
listed anywhere in the sandbox's ``/sys``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.policy import LEVELS
from pytest_cleanroom.testing import probes
from tests.conftest import require
from tests.security import ns_probes
from tests.security.backends import require_backend

pytestmark = pytest.mark.integration

ISOLATED = [level for level in LEVELS if Policy.level(level).network == "isolated"]


@pytest.mark.parametrize("level", ISOLATED)
@pytest.mark.parametrize("backend", ["bwrap", "unshare"])
def test_host_interface_names_are_not_listed(tmp_path: Path, backend: str, level: str) -> None:
    require_backend(backend)
    host = sorted(set(os.listdir("/sys/class/net")) - {"lo"})
    require(bool(host), "a network interface besides loopback on this machine")
    with Cleanroom(tmp_path / "ws", policy=level, backend=backend) as room:
        result = room.run(["python3", "-c", ns_probes.HOST_INTERFACE_NAMES, *host])
        if result.exit_code == probes.ESCAPED:
            pytest.fail(f"host interface names visible on {backend} under {level}: {result.stdout}")
        assert result.exit_code == probes.BLOCKED, result.describe()
        # The probe does see them where the network is the host's.
        opened = room.run(
            ["python3", "-c", ns_probes.HOST_INTERFACE_NAMES, *host],
            policy=Policy.level(level).replace(network="host"),
        )
        assert opened.exit_code == probes.ESCAPED, opened.describe()
