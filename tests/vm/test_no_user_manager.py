"""An unprivileged user on cgroup v2 without a systemd user manager (a container, a CI job with no
user session): no delegated subtree can be had, so whole-tree limits are refused with the fix,
and with the opt-in every record says ``rlimit``. Run before anything moved this pytest into a
delegated scope (its job service's cgroup is not the user's)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pytest_cleanroom import Policy

MiB = 1024 * 1024
SMALL = Policy.level("locked").replace(memory_limit=64 * MiB, max_processes=20, timeout=60)

SCRIPT = """
import json, sys
from pytest_cleanroom import Cleanroom, Policy, cgroups
from pytest_cleanroom.errors import TreeLimitsError
policy = Policy.model_validate_json(sys.argv[2])
out = {"parents": cgroups.parents() is not None, "why": cgroups.why_unavailable()}
try:
    Cleanroom(sys.argv[1] + "/refused", policy=policy, backend="bwrap")
except TreeLimitsError as exc:
    out["refused"] = str(exc)
with Cleanroom(sys.argv[1] + "/ws", policy=policy, backend="bwrap",
               per_process_limits=True) as room:
    hello = room.run(["true"])
    out["record"] = [hello.exit_code, hello.policy_name, hello.limits_enforcement]
print(json.dumps(out))
"""


def test_without_a_user_manager_limits_are_refused_with_the_fix(tmp_path: Path) -> None:
    assert os.geteuid() != 0, "run this file as the VM's unprivileged user (test-vm.sh --user)"
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SESSION_BUS_ADDRESS"}
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "no-user-manager")  # no bus, no private socket
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), SMALL.model_dump_json()],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["parents"] is False
    assert "is not writable by uid" in out["why"], out  # not already in a delegated subtree
    assert "no systemd user manager answers" in out["why"]
    assert "loginctl enable-linger" in out["why"]
    assert "systemd-run --user --scope -p Delegate=yes" in out["why"]
    assert "--cleanroom-per-process-limits" in out["refused"]
    assert out["record"] == [0, f"{SMALL.name}+per_process_limits", "rlimit"]
