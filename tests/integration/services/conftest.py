"""Helpers for the services' integration tests: private runtime directories, leak checks."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_cleanroom.services.binaries import find_postgres, find_redis
from pytest_cleanroom.services.engines import DOCKER, ENGINES, ContainerEngine, client_at
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


#: The services' images, built on each engine by the test command (scripts/test.sh).
IMAGES = ("cleanroom/postgres:15", "cleanroom/redis:7", "cleanroom/mariadb:10.11")
START = {"docker": "scripts/docker-engine.sh start", "podman": "scripts/podman-engine.sh start"}


def require_engine(engine: ContainerEngine) -> None:
    """Skip locally (fail in CI) unless ``engine`` answers and holds the services' images."""
    import docker.errors

    ok, detail = engine.status()
    require(ok, f"a {engine.title} ({detail}; {START[engine.name]})")
    client = client_at(engine.host())
    try:
        for image in IMAGES:
            try:
                client.images.get(image)
            except docker.errors.ImageNotFound:
                require(False, f"image {image} on the {engine.title} ({engine.images_fix})")
    finally:
        client.close()


@pytest.fixture
def need_docker() -> None:
    require_engine(DOCKER)


@pytest.fixture(
    params=[
        pytest.param("docker", marks=pytest.mark.docker),
        pytest.param("podman", marks=pytest.mark.podman),
    ]
)
def engine(request: pytest.FixtureRequest) -> ContainerEngine:
    """Each container engine in turn, once it answers with the services' images."""
    found = ENGINES[request.param]
    require_engine(found)
    return found


def engine_env(engine: ContainerEngine) -> dict[str, str]:
    """What a child run needs to serve its services from ``engine`` (its provider, its socket)."""
    variable = {"docker": "DOCKER_HOST", "podman": "CLEANROOM_PODMAN_HOST"}[engine.name]
    return {"CLEANROOM_SERVICES": engine.name, variable: engine.host()}


def docker_client(engine: ContainerEngine = DOCKER) -> Any:
    """A docker SDK client on ``engine`` as the services find it (DOCKER_HOST or the project's
    engine; CLEANROOM_PODMAN_HOST or the project's Podman service)."""
    return client_at(engine.host())


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


@contextlib.contextmanager
def mute_socket(path: Path) -> Iterator[list[socket.socket]]:
    """A socket at ``path`` that accepts connections and never answers, as a hung engine does
    (stopping the machine's shared engines to get a real one is not ours to do); yields the
    connections it accepted."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield held
    finally:
        server.close()
        for conn in held:
            conn.close()
        path.unlink()
