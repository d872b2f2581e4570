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
    LABEL_OWNER_START,
    LABEL_ROLE,
    DockerEngineDownError,
    DockerImageMissingError,
    DockerSocketMissingError,
    connect,
    owner_labels,
    reaper,
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


#: The host name the sweep tests give themselves (see ``elsewhere``).
ELSEWHERE = "elsewhere.invalid"


@pytest.fixture
def elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process names its host :data:`ELSEWHERE`: what it labels as a dead owner's is then
    another host's to every other process sharing the engine (concurrent runs and xdist workers
    sweep too), which leave it alone; this process's own sweep judges it."""
    monkeypatch.setattr(socket, "gethostname", lambda: ELSEWHERE)


def _dead_owner_labels(role: str) -> dict[str, str]:
    labels = owner_labels("crashed-run", role=role)
    labels[LABEL_OWNER_PID] = str(_dead_pid())
    return labels


@pytest.mark.usefixtures("local_images", "elsewhere")
def test_sweep_removes_containers_and_volumes_of_dead_owners_only(docker_client: Any) -> None:
    role = f"sweep-test-{uuid.uuid4().hex[:8]}"
    dead = _dead_owner_labels(role)
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
        role_filter = {"label": f"{LABEL_ROLE}={role}"}
        left = docker_client.containers.list(all=True, filters=role_filter, sparse=True)
        assert [c.id for c in left] == [mine.id]
        assert sweep_leftovers(docker_client, role=role) == []
    finally:
        for container in (orphan, stopped, mine):
            if _exists(docker_client, container.id):
                container.remove(force=True)
        if volume.name in [v.name for v in docker_client.volumes.list()]:
            volume.remove(force=True)


def _removing_after_listing(client: Any, victim: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``client``'s next container listing remove ``victim`` through the real engine right
    after the engine answered, before anything is done with the containers listed (docker-py's
    full listing inspects each, and the engine answers 404 for that one). Another sweeper's
    removal falls in this window only now and then; the hook makes it certain (the removal and
    the engine's answers are real)."""
    listing = client.api.containers

    def containers(*args: Any, **kwargs: Any) -> Any:
        found = listing(*args, **kwargs)
        monkeypatch.setattr(client.api, "containers", listing)  # once
        client.api.remove_container(victim, force=True, v=True)
        return found

    monkeypatch.setattr(client.api, "containers", containers)


@pytest.mark.usefixtures("local_images", "elsewhere")
def test_a_container_removed_while_the_sweep_runs_counts_as_gone(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    role = f"sweep-race-{uuid.uuid4().hex[:8]}"
    dead = _dead_owner_labels(role)
    first, second = (
        docker_client.containers.create(BASE_IMAGE, ["true"], labels=dead) for _ in "12"
    )
    client = connect()
    try:
        _removing_after_listing(client, first.id, monkeypatch)
        removed = sweep_leftovers(client, role=role)
    finally:
        client.close()
        for container in (first, second):
            if _exists(docker_client, container.id):
                container.remove(force=True)
    assert removed == [second.name]  # the first was removed by "another sweeper"
    assert not _exists(docker_client, second.id)


@pytest.mark.usefixtures("local_images", "elsewhere")
def test_the_reaper_removes_the_rest_when_one_is_removed_meanwhile(
    docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = _dead_owner_labels("backend")
    first, second = (
        docker_client.containers.run(
            BASE_IMAGE, ["sleep", "300"], labels=labels, detach=True, network_mode="none"
        )
        for _ in "12"
    )
    client = connect()
    _removing_after_listing(client, first.id, monkeypatch)
    monkeypatch.setattr(reaper, "connect", lambda host: client)
    try:
        reaper.reap("unused", labels[LABEL_OWNER_PID], labels[LABEL_OWNER_START])
    finally:
        client.close()
        for container in (first, second):
            if _exists(docker_client, container.id):
                container.remove(force=True)
                pytest.fail(f"{container.name} outlived the reap")


def _exists(client: Any, container_id: str) -> bool:
    return bool(client.containers.list(all=True, filters={"id": container_id}, sparse=True))


# Labelled as another host's (see ``elsewhere``), so that only the next process below, which
# names its host the same, may sweep it; without the reaper, as where it cannot start: an engine
# killed with its reaper leaves its containers to the next process's sweep.
CRASH_SCRIPT = f"""
import socket, sys
socket.gethostname = lambda: {ELSEWHERE!r}
from pytest_cleanroom import Cleanroom
from pytest_cleanroom.containers import reaper
reaper.ensure_started = lambda host: None
room = Cleanroom(sys.argv[1], backend="docker")
print("running", flush=True)
room.run("sleep 300")
"""
NEXT_SCRIPT = f"""
import socket, sys
socket.gethostname = lambda: {ELSEWHERE!r}
from pytest_cleanroom import Cleanroom
Cleanroom(sys.argv[1], backend="docker")
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
    try:
        left = docker_client.containers.list(all=True, filters=owner, sparse=True)
        assert left, "nothing was left behind"
        # The next process that uses the backend sweeps it.
        subprocess.run(
            [sys.executable, "-c", NEXT_SCRIPT, str(tmp_path / "next")],
            check=True,
            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        )
        assert docker_client.containers.list(all=True, filters=owner, sparse=True) == []
    finally:  # nobody else would remove another host's container
        for container in docker_client.containers.list(all=True, filters=owner, sparse=True):
            container.remove(force=True)


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
    assert docker_client.containers.list(all=True, filters=owner, sparse=True) == []


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
