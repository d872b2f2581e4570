"""The podman backend on the Podman service of scripts/podman-engine.sh: what only it does.

The escape, limit, output and environment checks run on it through the shipped conformance suite
(tests/security, ``conformance_backend``); these cover how it is found and what it bridges.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.backends import registry
from pytest_cleanroom.backends.podman import PodmanBackend, service_limits
from tests.security.backends import require_backend

pytestmark = pytest.mark.integration


@pytest.fixture
def podman() -> str:
    require_backend("podman")
    return "podman"


def test_it_is_registered_through_its_entry_point() -> None:
    declared = {ep.name: ep.value for ep in entry_points(group=registry.GROUP)}
    assert declared["podman"] == "pytest_cleanroom.backends.podman:PodmanBackend"
    assert registry.load("podman") is PodmanBackend


def test_results_name_podman_and_its_cgroups(tmp_path: Path, podman: str) -> None:
    with Cleanroom(tmp_path / "ws", backend=podman, policy="locked") as room:
        result = room.run("echo hi > out.txt; head -c 4000000 /dev/zero | wc -c")
    result.assert_success()
    assert result.backend == "podman"
    assert result.limits_enforcement == "podman"
    assert result.peak_memory is not None
    assert result.peak_memory > 0
    assert result.cpu_time is not None
    assert (tmp_path / "ws" / "out.txt").read_text() == "hi\n"


def test_containers_get_the_services_own_limits(tmp_path: Path, podman: str) -> None:
    # Podman's default (1048576 open files and processes) cannot be set where the service's
    # own hard limits are lower; containers get the service's, as Docker's get the daemon's.
    limits = service_limits(PodmanBackend().host)
    assert set(limits) == {"nofile", "nproc"}
    policy = Policy.level("standard").replace(max_open_files=None)
    with Cleanroom(tmp_path / "ws", backend=podman, policy=policy) as room:
        result = room.run("ulimit -Hn")
    result.assert_success()
    assert int(result.stdout) == limits["nofile"]


def test_a_hidden_path_shows_nothing_of_the_image(tmp_path: Path, podman: str) -> None:
    # Podman would copy the image's /root into the tmpfs that hides it.
    with Cleanroom(tmp_path / "ws", backend=podman, policy="locked") as room:
        result = room.run("ls -A /root; ls -A /var/tmp; touch /var/tmp/x")
    assert result.stdout == ""
    assert "Read-only file system" in result.stderr


def test_the_host_pid_namespace_runs_without_an_init(tmp_path: Path, podman: str) -> None:
    policy = Policy.level("permissive")
    assert not policy.isolate_pids
    with Cleanroom(tmp_path / "ws", backend=podman, policy=policy) as room:
        result = room.run("echo $$")
    result.assert_success()
    assert int(result.stdout) > 1


def test_a_host_interpreter_is_named_as_the_hosts(tmp_path: Path, podman: str) -> None:
    with Cleanroom(tmp_path / "ws", backend=podman) as room:
        result = room.run([sys.executable, "-c", "print(1)"])
    assert result.exit_code == 127
    assert result.stderr.splitlines()[1].startswith(
        f"cleanroom: {sys.executable} exists on this host, but the podman backend runs commands "
        "on the image's own filesystem ("
    )
