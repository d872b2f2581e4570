"""Helpers for the services' integration tests: private runtime directories, leak checks."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_cleanroom.services.binaries import find_postgres, find_redis
from pytest_cleanroom.services.providers import docker_status
from pytest_cleanroom.services.settings import ServiceSettings
from tests.conftest import require

REPO = Path(__file__).resolve().parents[3]


SHM = Path("/dev/shm")


def data_dir_of(runtime_dir: Path) -> Path:
    """The RAM data directory paired with a test's runtime directory (same name in /dev/shm)."""
    return SHM / runtime_dir.name if SHM.is_dir() else Path(f"{runtime_dir}-data")


def processes_under(path: Path) -> list[int]:
    """Pids of processes working in ``path`` or its paired data directory (servers do)."""
    roots = [str(path.resolve()), str(data_dir_of(path))]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and any(cwd == r or cwd.startswith(r + "/") for r in roots):
            found.append(int(entry.name))
    return found


def leftovers(runtime_dir: Path) -> list[str]:
    """Server directories (runtime and data) that still exist."""
    names = [p.name for p in runtime_dir.iterdir() if p.name != "registry"]
    data = data_dir_of(runtime_dir)
    if data.is_dir():
        names += [f"data:{p.name}" for p in data.iterdir()]
    return sorted(names)


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """A short private runtime directory (unix socket paths are limited to ~100 bytes).

    At the end nothing may still run in it: a leaked server fails the test.
    """
    path = Path(tempfile.mkdtemp(prefix="crt-", dir="/tmp"))
    yield path
    leaked = processes_under(path)
    kill_all(leaked)
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(data_dir_of(path), ignore_errors=True)
    assert not leaked, f"processes leaked in {path}: {leaked}"


@pytest.fixture
def settings(runtime_dir: Path) -> ServiceSettings:
    return ServiceSettings(
        runtime_dir=runtime_dir,
        data_dir=data_dir_of(runtime_dir),
        start_timeout=60.0,
        base_dir=runtime_dir,
    )


@pytest.fixture
def need_postgres() -> None:
    require(find_postgres() is not None, "PostgreSQL server binaries (apt-get install postgresql)")


@pytest.fixture
def need_redis() -> None:
    require(find_redis() is not None, "redis-server (apt-get install redis-server)")


@pytest.fixture
def need_docker() -> None:
    ok, detail = docker_status()
    require(ok, f"a Docker engine ({detail}; scripts/docker-engine.sh start)")
    client = docker_client()
    try:
        names = {tag for image in client.images.list() for tag in image.tags}
    finally:
        client.close()
    for image in ("cleanroom/postgres:15", "cleanroom/redis:7"):
        require(image in names, f"image {image} (scripts/build-images.sh)")


def docker_client() -> Any:
    """A docker SDK client on the engine the services use (DOCKER_HOST or the project's)."""
    import docker

    from pytest_cleanroom.containers import docker_host

    return docker.DockerClient(base_url=docker_host())


def child_env(runtime_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a child pytest: our runtime directory, no stray service settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLEANROOM_", "PYTEST_"))}
    env["CLEANROOM_SERVICES_RUNTIME_DIR"] = str(runtime_dir)
    env["CLEANROOM_SERVICES_DATA_DIR"] = str(data_dir_of(runtime_dir))
    env["TESTCONTAINERS_RYUK_DISABLED"] = "true"
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def run_pytest(
    directory: Path, env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def wait_for_file(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"child pytest exited early ({proc.returncode}):\n{out}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.05)
