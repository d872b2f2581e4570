"""A rootless Podman service on cgroup v1 ignores container limits: the backend refuses them.

The service runs for real, as uid 65534 with its own storage (no subordinate ids: Podman maps
that one uid), on this machine's kernel; its API still says it can set memory and task limits.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import Policy
from pytest_cleanroom.backends.podman import _UNIFIED_ONLY, PodmanBackend, service_peer
from pytest_cleanroom.errors import BackendUnavailableError
from tests.conftest import require

pytestmark = pytest.mark.integration

NOBODY = 65534


@pytest.fixture
def rootless_service() -> Iterator[str]:
    """``unix://`` address of a Podman service running as uid 65534."""
    podman = shutil.which("podman")
    require(podman is not None, "podman not on PATH (scripts/setup.sh --docker)")
    require(os.geteuid() == 0, "root, to start a service as another user")
    require(not _UNIFIED_ONLY.exists(), "cgroup v1 hierarchies (this host is cgroup v2 only)")
    assert podman is not None
    # Not under pytest's base temp directory, which only root may enter.
    home = Path(tempfile.mkdtemp(prefix="cleanroom-rootless-"))
    home.chmod(0o755)
    os.chown(home, NOBODY, NOBODY)
    sock = home / "podman.sock"
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            podman, "--root", f"{home}/storage", "--runroot", f"{home}/run",
            "--cgroup-manager=cgroupfs", "--events-backend=file",
            "system", "service", "--time=0", f"unix://{sock}"]  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "XDG_RUNTIME_DIR": str(home)}
    service = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while service_peer(f"unix://{sock}") is None:
            assert service.poll() is None, service.communicate()[1]
            assert time.monotonic() < deadline, "the rootless service never answered"
            time.sleep(0.1)
        yield f"unix://{sock}"
    finally:
        # Its own group: rootless Podman re-executes itself, and keeps a pause process that
        # holds its namespaces in a session of its own (pid in pause.pid).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.pid, signal.SIGKILL)
        service.wait(30)
        for pause in home.glob("**/pause.pid"):
            with contextlib.suppress(ValueError, ProcessLookupError):
                os.kill(int(pause.read_text()), signal.SIGKILL)
        shutil.rmtree(home, ignore_errors=True)


def test_limits_are_refused_on_a_rootless_service(rootless_service: str) -> None:
    backend = PodmanBackend(host=rootless_service)
    peer = service_peer(rootless_service)
    assert peer is not None
    assert peer[1] == NOBODY
    with pytest.raises(BackendUnavailableError, match="rootless") as refused:
        backend.check(Policy.level("locked"))
    assert "memory_limit, max_processes" in str(refused.value)
    assert "scripts/podman-engine.sh start" in str(refused.value)
