"""An unprivileged engine on cgroup v2 with a systemd user session: it asks systemd for a scope
with Delegate=yes (D-Bus StartTransientUnit) and keeps its groups there."""

from __future__ import annotations

import os
from pathlib import Path

from pytest_cleanroom import cgroups


def own_cgroup() -> str:
    return Path("/proc/self/cgroup").read_text().strip().partition("::")[2]


def test_an_unprivileged_engine_gets_a_delegated_scope() -> None:
    assert os.geteuid() != 0, "run this file as the VM's unprivileged user (test-vm.sh --user)"
    found = cgroups.parents()
    assert found is not None, cgroups.why_unavailable()
    [parent] = found.values()
    assert parent.name == "pytest-cleanroom"
    assert parent.parent.name.endswith(".scope")  # a systemd scope with Delegate=yes
    assert own_cgroup().endswith("/pytest-cleanroom-engine")  # no process above the groups
    assert os.stat(parent.parent).st_uid == os.geteuid()
