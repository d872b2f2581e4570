"""Every backend refuses (with EPERM, never a kill) the system calls each level says.

``baseline`` (every level) refuses the kernel keyring; ``strict`` (``strict``, ``locked``) also
io_uring, userfaultfd, bpf, perf_event_open, kexec, module loading, ptrace and cross-process
memory access; where nested user namespaces are forbidden, creating any namespace is refused.
On docker the engine's filter is installed on top of Docker's default profile, which alone lets
io_uring and ptrace through.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.policy import LEVELS
from pytest_cleanroom.testing import probes
from tests.security import ns_probes
from tests.security.backends import require_backend

pytestmark = pytest.mark.integration


def _run(tmp_path: Path, backend: str, policy: Policy, *args: str) -> int:
    with Cleanroom(tmp_path / "ws", policy=policy, backend=backend) as room:
        result = room.run(["python3", "-c", ns_probes.SECCOMP, *args])
    assert result.exit_code in (probes.BLOCKED, probes.ESCAPED), result.describe()
    return result.exit_code


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_refuses_its_system_calls(tmp_path: Path, backend: str, level: str) -> None:
    policy = Policy.level(level)
    namespaces = "0" if policy.nested_user_namespaces else "1"
    code = _run(tmp_path, backend, policy, policy.syscall_filter, namespaces)
    assert code == probes.BLOCKED


@pytest.mark.parametrize("backend", ["bwrap", "unshare"])
def test_the_probe_sees_calls_that_standard_allows(tmp_path: Path, backend: str) -> None:
    # standard keeps io_uring, ptrace and nested namespaces: asking for more must be reported.
    require_backend(backend)
    standard = Policy.level("standard")
    assert _run(tmp_path, backend, standard, "strict", "0") == probes.ESCAPED
    assert _run(tmp_path, backend, standard, "baseline", "1") == probes.ESCAPED


def test_docker_default_profile_alone_lets_strict_calls_through(tmp_path: Path) -> None:
    # Under standard only Docker's profile applies: io_uring and ptrace get through, so what
    # refuses them under strict and locked is the engine's own filter.
    require_backend("docker")
    standard = Policy.level("standard")
    assert _run(tmp_path, "docker", standard, "strict", "0") == probes.ESCAPED
