"""The engine around the backend: clear errors without it, the leftover sweep, bridge networking."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.containers import (
    LABEL_OWNER_PID,
    LABEL_ROLE,
    DockerEngineDownError,
    DockerImageMissingError,
    DockerSocketMissingError,
    connect,
    owner_labels,
    sweep_leftovers,
)

from ..nobody import answer_as_nobody, root_only_socket
from .conftest import BASE_IMAGE

pytestmark = [pytest.mark.integration, pytest.mark.docker]

REPO = Path(__file__).resolve().parents[3]


def wait_for_container(
    docker_client: Any, filters: dict[str, Any], run: subprocess.Popen[Any]
) -> None:
    """Wait until the child process ``run`` has a running container matching ``filters``."""
    deadline = time.monotonic() + 60
    # sparse: no inspection of each container, which one ending meanwhile fails (404)
    while not docker_client.containers.list(filters=filters, sparse=True):
        assert run.poll() is None, "the run ended before its container started"
        assert time.monotonic() < deadline, "the container never started"
        time.sleep(0.05)


def refusal(tmp_path: Path, error: type[Exception]) -> str:
    """The message of ``error``, with which opening a docker cleanroom must fail."""
    with pytest.raises(error) as err:
        Cleanroom(tmp_path / "ws", backend="docker")
    return str(err.value)


def test_missing_socket_names_the_start_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing-here.sock")
    message = refusal(tmp_path, DockerSocketMissingError)
    assert "does not exist" in message
    assert "systemctl start docker" in message  # what a pip user has
    assert "scripts/docker-engine.sh start" in message  # what a checkout has
    assert not (tmp_path / "ws" / "out").exists()


def test_socket_without_an_engine_says_the_engine_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real socket file that nobody listens on: what a crashed dockerd leaves behind.
    path = tmp_path / "dead.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    message = refusal(tmp_path, DockerEngineDownError)
    assert "engine is down" in message
    assert "exists but nobody answers" in message
    assert "scripts/docker-engine.sh start" in message
    with pytest.raises(DockerEngineDownError):
        connect(f"unix://{path}")


def test_a_socket_the_user_may_not_open_names_its_permissions() -> None:
    """As a user outside the socket's group the engine may run: the fix is the socket's
    permissions, not starting an engine."""
    if os.geteuid() != 0:
        pytest.skip("needs root, to ask as the 'nobody' user")
    with root_only_socket() as path:
        message = answer_as_nobody(lambda: repr(connect(f"unix://{path}")))
    assert message.startswith("DockerSocketPermissionError: "), message
    assert f"permission denied on the Docker socket {path}" in message
    assert "add your user to the docker group or fix the socket's permissions" in message
    assert "engine is down" not in message


def test_missing_image_names_the_build_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_client: Any
) -> None:
    image = f"cleanroom/never-built-{uuid.uuid4().hex[:8]}:1"
    monkeypatch.setenv("CLEANROOM_DOCKER_IMAGE", image)
    message = refusal(tmp_path, DockerImageMissingError)
    assert image in message
    assert "scripts/build-images.sh" in message
    assert "never pulled" in message


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.usefixtures("local_images")
def test_sweep_removes_containers_and_volumes_of_dead_owners_only(docker_client: Any) -> None:
    role = f"sweep-test-{uuid.uuid4().hex[:8]}"
    dead = owner_labels("crashed-run", role=role)
    dead[LABEL_OWNER_PID] = str(_dead_pid())
    alive = owner_labels("this-run", role=role)
    orphan = docker_client.containers.run(
        BASE_IMAGE, ["sleep", "300"], labels=dead, detach=True, network_mode="none"
    )
    stopped = docker_client.containers.create(BASE_IMAGE, ["true"], labels=dead)
    volume = docker_client.volumes.create(labels=dead)
    mine = docker_client.containers.create(BASE_IMAGE, ["true"], labels=alive)
    try:
        removed = sweep_leftovers(docker_client, role=role)
        assert sorted(removed) == sorted([orphan.name, stopped.name, volume.name])
        left = docker_client.containers.list(all=True, filters={"label": f"{LABEL_ROLE}={role}"})
        assert [c.id for c in left] == [mine.id]
        assert sweep_leftovers(docker_client, role=role) == []
    finally:
        for container in (orphan, stopped, mine):
            if _exists(docker_client, container.id):
                container.remove(force=True)
        if volume.name in [v.name for v in docker_client.volumes.list()]:
            volume.remove(force=True)


def _exists(client: Any, container_id: str) -> bool:
    return bool(client.containers.list(all=True, filters={"id": container_id}))


CRASH_SCRIPT = """
import sys
from pytest_cleanroom import Cleanroom
room = Cleanroom(sys.argv[1], backend="docker")
print("running", flush=True)
room.run("sleep 300")
"""


@pytest.mark.usefixtures("local_images")
def test_container_of_a_killed_run_is_swept_by_the_next_one(
    tmp_path: Path, docker_client: Any
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH_SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    owner = {"label": [f"{LABEL_OWNER_PID}={proc.pid}", f"{LABEL_ROLE}=backend"]}
    try:
        wait_for_container(docker_client, owner, proc)
    finally:
        proc.send_signal(signal.SIGKILL)  # no chance to clean up
        proc.wait()
    assert docker_client.containers.list(all=True, filters=owner), "nothing was left behind"
    # The next process that uses the backend sweeps it.
    subprocess.run(
        [sys.executable, "-c", "from pytest_cleanroom import Cleanroom; import sys; "
         "Cleanroom(sys.argv[1], backend='docker')", str(tmp_path / "next")],
        check=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    assert docker_client.containers.list(all=True, filters=owner) == []


CTRL_C_SCRIPT = """
import sys
from pytest_cleanroom import Cleanroom
room = Cleanroom(sys.argv[1], backend="docker")
try:
    room.run("sleep 300")
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(42)
"""


@pytest.mark.usefixtures("local_images")
def test_ctrl_c_removes_the_container(tmp_path: Path, docker_client: Any) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    owner = {"label": f"{LABEL_OWNER_PID}={proc.pid}"}
    try:
        wait_for_container(docker_client, owner, proc)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 42
    assert out.strip() == "interrupted"
    assert docker_client.containers.list(all=True, filters=owner) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.usefixtures("local_images")
def test_port_published_on_loopback_is_reachable_from_the_host(docker_client: Any) -> None:
    """Bridge networking without iptables: docker-proxy forwards 127.0.0.1:PORT."""
    port = _free_port()
    token = uuid.uuid4().hex
    container = docker_client.containers.run(
        BASE_IMAGE,
        ["sh", "-c", f"mkdir -p /srv/www && echo {token} > /srv/www/index.html && "
         "exec python3 -m http.server 8000 --directory /srv/www"],
        ports={"8000/tcp": ("127.0.0.1", port)},
        labels=owner_labels(role="port-test"),
        detach=True,
    )  # fmt: skip
    try:
        binding = docker_client.api.port(container.id, 8000)
        assert binding == [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
        body = ""
        deadline = time.monotonic() + 60
        while token not in body:
            assert time.monotonic() < deadline, f"http.server never answered on :{port}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    body = response.read().decode()
            except OSError:
                time.sleep(0.2)
        assert body.strip() == token
    finally:
        container.remove(force=True)
