"""Nothing a sandbox mounts reaches the host, even where the host's mounts are shared.

systemd makes ``/`` shared, so every mount below it is a peer of the others: a sandbox that
clones a host tree (the workspace, a directory bound afresh) and mounts on or below the clone
would mount on the host too, unless the clone is made private. Here the workspace lives on a
shared tmpfs of the test's own, and the sandbox binds a file below ``/workspace``: the host must
see no new mount under that tmpfs, on every local backend, warm and cold.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy, cgroups
from pytest_cleanroom.backends import _nsinit_native, get_backend
from pytest_cleanroom.backends.base import CommandSpec, Mount
from pytest_cleanroom.environment import build_environment
from tests.conftest import require
from tests.security.backends import require_backend, wait_for_a_sandbox_entered_ahead
from tests.security.test_hidden_file_replaced import STARTS

pytestmark = pytest.mark.integration


@pytest.fixture
def shared_tmpfs() -> Iterator[Path]:
    """A tmpfs of the test's own, with shared propagation (as systemd leaves every mount)."""
    require(os.geteuid() == 0, "root: mounting a tmpfs of the test's own")
    where = Path(tempfile.mkdtemp(prefix="cleanroom-shared-", dir="/var/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], check=True)
    try:
        subprocess.run(["mount", "--make-shared", str(where)], check=True)
        where.chmod(0o755)
        yield where
    finally:
        subprocess.run(["umount", "-R", "-l", str(where)], check=False)
        where.rmdir()


def mounts_below(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p.startswith(f"{path}/")]


# Root in the sandbox: no idmapped view (tmpfs has none before Linux 6.3).
@pytest.mark.parametrize("level", ["permissive", "standard"])
@pytest.mark.parametrize("start", sorted(STARTS))
def test_a_sandbox_mounts_nothing_on_a_shared_host_tree(
    shared_tmpfs: Path, start: str, level: str
) -> None:
    require_backend(start.split("-")[0])
    workspace = shared_tmpfs / "ws"
    (workspace / "sub").mkdir(parents=True)
    (workspace / "sub" / "file").write_text("host\n")
    shown = shared_tmpfs / "shown"
    shown.write_text("bound\n")
    backend = STARTS[start]()
    spec = CommandSpec(
        argv=("/bin/sh", "-c", "cat /workspace/sub/file"),
        workspace=workspace,
        cwd="/workspace",
        env=build_environment(seed=1, allowlist=(), layers=()),
        policy=Policy.level(level),
        seed=1,
        timeout=60,
        mounts=(Mount(shown, "/workspace/sub/file"),),
    )
    try:
        backend.check(spec.policy)
        results = [backend.run(spec) for _ in range(3)]  # the later ones enter a warm sandbox
    finally:
        backend.close()
    for result in results:
        assert (result.exit_code, result.stdout) == (0, "bound\n"), result.stderr
    assert mounts_below(shared_tmpfs) == []
    assert (workspace / "sub" / "file").read_text() == "host\n"


# The workspace's line of the mount table: root, options, optional fields (peer groups).
WORKSPACE_MOUNT = r"""awk '$5 == "/workspace" {
  split($0, halves, " - "); n = split(halves[1], f, " ")
  opt = ""; for (i = 7; i <= n; i++) opt = opt " " f[i]
  print $4, $6 "|" opt }' /proc/self/mountinfo"""


@pytest.mark.parametrize("name", ["bwrap", "unshare"])
def test_a_workspace_given_to_a_sandbox_entered_ahead_is_a_private_clone(
    shared_tmpfs: Path, name: str
) -> None:
    """A test's first command starts in a sandbox entered ahead and is given a clone of its
    workspace as it starts: a private one (no peer of the host's shared tmpfs: nothing mounted
    on it could reach the host), with the options of a cold start's."""
    require_backend(name)
    require(
        cgroups.parents() is not None, "writable cgroups: only then are sandboxes entered ahead"
    )
    require(_nsinit_native.program()[0] is not None, "the compiled set-up step (a C compiler)")
    policy = Policy.level("standard")
    warm, cold = get_backend(name, policy), STARTS[f"{name}-cold"]()
    seen: dict[str, str] = {}
    try:
        for index, backend in enumerate((warm, warm, cold)):
            workspace = shared_tmpfs / f"ws{index}"
            with Cleanroom(workspace, policy=policy, backend=backend, seed=1) as room:
                if index == 1:  # a new test's first command
                    wait_for_a_sandbox_entered_ahead(warm)
                result = room.run(["sh", "-c", WORKSPACE_MOUNT]).assert_success()
            seen["warm" if backend is warm else "cold"] = result.stdout
    finally:
        warm.close()
        cold.close()
    root, fields = seen["warm"].split(" ", 1)
    options, peers = fields.rstrip("\n").split("|")
    assert (root, peers) == ("/ws1", ""), seen  # private: no shared or master peer group
    assert options == seen["cold"].split(" ", 1)[1].split("|")[0], seen
    assert mounts_below(shared_tmpfs) == []
