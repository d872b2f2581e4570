"""Every leftover sweeper judges an owner the same way (#12): an owner in another pid namespace
cannot be judged from here and counts as alive, so neither the docker sweep nor the cgroup sweep
removes what it may still use; an owner here that exited counts as dead."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import containers
from pytest_cleanroom.errors import BackendUnavailableError
from pytest_cleanroom.owner import Owner, pid_namespace
from tests.conftest import require

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]

# Writes the records a run leaves behind (container labels, a cgroup's name), then keeps running
# until its stdin closes.
RECORD = """
import json, sys
from pytest_cleanroom.containers import owner_labels
from pytest_cleanroom.owner import Owner
from pytest_cleanroom.services.container_provider import labels
owner = Owner.current()
print(json.dumps({"labels": owner_labels(role="backend"), "group": owner.group_prefix() + "0",
                  "service_labels": labels("run", owner, "postgres")}))
sys.stdout.flush()
sys.stdin.read()
"""

ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}


def _records(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, "the owner wrote no record"
    records = json.loads(line)
    assert isinstance(records, dict)
    return records


def _docker_sweep_keeps(labels: dict[str, str]) -> bool:
    owner = containers.owner_of(labels)
    return owner is not None and owner.is_alive()


def _cgroup_sweep_keeps(group: str) -> bool:
    owner = Owner.of_group(group)
    return owner is not None and owner.is_alive()


@pytest.fixture
def other_namespace_owner() -> Iterator[dict[str, object]]:
    """The records of a running process in a pid namespace of its own (it is pid 1 there)."""
    unshare = shutil.which("unshare")
    require(unshare is not None, "the unshare command (util-linux)")
    assert unshare is not None
    probe = subprocess.run(
        [unshare, "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False
    )
    require(probe.returncode == 0, "permission to create pid namespaces (unshare --pid)")
    proc = subprocess.Popen(
        [unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-c", RECORD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        yield _records(proc)
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def test_an_owner_in_another_pid_namespace_is_alive_for_every_sweep(
    other_namespace_owner: dict[str, object],
) -> None:
    labels = other_namespace_owner["labels"]
    service_labels = other_namespace_owner["service_labels"]  # the services' containers
    group = other_namespace_owner["group"]
    assert isinstance(labels, dict)
    assert isinstance(service_labels, dict)
    assert isinstance(group, str)
    # The record really comes from elsewhere: its pid (1 there) names another process here.
    assert labels[containers.LABEL_OWNER_PIDNS] not in ("", pid_namespace())
    assert labels[containers.LABEL_OWNER_PID] == "1"
    assert _docker_sweep_keeps(labels)
    assert _docker_sweep_keeps(service_labels)
    assert _cgroup_sweep_keeps(group)


def test_an_owner_here_that_exited_is_dead_for_every_sweep() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    records = _records(proc)
    labels = records["labels"]
    service_labels = records["service_labels"]
    group = records["group"]
    assert isinstance(labels, dict)
    assert isinstance(service_labels, dict)
    assert isinstance(group, str)
    assert labels[containers.LABEL_OWNER_PIDNS] == pid_namespace()
    assert _docker_sweep_keeps(labels)
    assert _docker_sweep_keeps(service_labels)
    assert _cgroup_sweep_keeps(group)
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)
    assert not _docker_sweep_keeps(labels)
    assert not _docker_sweep_keeps(service_labels)
    assert not _cgroup_sweep_keeps(group)


def test_the_docker_sweep_keeps_an_owner_in_another_pid_namespace_and_removes_an_exited_one(
    other_namespace_owner: dict[str, object],
) -> None:
    try:
        client = containers.connect()
    except BackendUnavailableError as exc:
        require(False, f"a Docker engine ({exc})")
        raise
    labels = other_namespace_owner["labels"]
    assert isinstance(labels, dict)
    exited = subprocess.run(
        [sys.executable, "-c", RECORD], input="", capture_output=True, text=True, env=ENV
    )
    dead_labels = json.loads(exited.stdout)["labels"]
    role = f"pidns-test-{uuid.uuid4().hex[:8]}"
    kept = client.volumes.create(labels={**labels, containers.LABEL_ROLE: role})
    swept = client.volumes.create(labels={**dead_labels, containers.LABEL_ROLE: role})
    try:
        assert containers.sweep_leftovers(client, role=role) == [swept.name]
        left = client.volumes.list(filters={"label": f"{containers.LABEL_ROLE}={role}"})
        assert [v.name for v in left] == [kept.name]
    finally:
        for volume in client.volumes.list(filters={"label": f"{containers.LABEL_ROLE}={role}"}):
            volume.remove(force=True)
        client.close()
