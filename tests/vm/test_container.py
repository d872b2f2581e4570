"""Root inside a container's cgroup namespace on a cgroup v2 host: a writable namespace is used as
a delegated subtree (its processes moved into a leaf first); a read-only one is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from pytest_cleanroom import Policy

MiB = 1024 * 1024
SMALL = Policy.level("locked").replace(memory_limit=64 * MiB, max_processes=20, timeout=60)
CGROUP = "/sys/fs/cgroup"


CONTAINER = """
import json, sys
from pytest_cleanroom import Cleanroom, Policy, cgroups
out = {"parents": str(cgroups.parents()), "why": cgroups.why_unavailable()}
policy = Policy.model_validate_json(sys.argv[2])
try:
    with Cleanroom(sys.argv[1], policy=policy, backend="bwrap") as room:
        hog = room.run(["python3", "-c", "x = b'x' * (200 << 20)"])
        out["hog"] = [hog.limit_exceeded, hog.limits_enforcement]
except Exception as exc:
    out["error"] = str(exc)
print(json.dumps(out))
"""


def remove_tree(group: Path) -> None:
    """Remove ``group`` and the groups below it, waiting for exiting tasks (the engine's reaper)."""
    for _ in range(500):
        try:
            for sub in sorted(group.rglob("*"), key=lambda p: -len(p.parts)):
                if sub.is_dir():
                    sub.rmdir()
            group.rmdir()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"{group} could not be removed: tasks are left in it")


def in_container(tmp_path: Path, *, writable: bool) -> dict[str, object]:
    """Run the engine as root in a cgroup namespace whose root is a fresh group, with cgroup2
    mounted afresh (what Docker's --cgroupns=private gives a container)."""
    group = Path("/sys/fs/cgroup") / f"container-{tmp_path.name}-{int(writable)}"
    group.mkdir()
    remount = f"umount -l {CGROUP} && mount -t cgroup2 {'' if writable else '-o ro '}none {CGROUP}"
    argv = ["sh", "-c", f'echo $$ > {group}/cgroup.procs && exec "$@"', "sh",
            "unshare", "--cgroup", "--mount", "--fork", "sh", "-c",
            f'{remount} && exec "$@"',
            "sh", sys.executable, "-c", CONTAINER, str(tmp_path / f"ws{int(writable)}"),
            SMALL.model_dump_json()]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    finally:
        remove_tree(group)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_root_in_a_containers_cgroup_namespace(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "run this file as the VM's root"
    out = in_container(tmp_path, writable=True)
    assert out["hog"] == ["memory", "cgroup2"], out
    refused = in_container(tmp_path, writable=False)
    assert "not the host's root" in str(refused["why"]), refused
    assert "memory_limit" in str(refused["error"]), refused  # refused, not weakened
