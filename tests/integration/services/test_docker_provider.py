"""The docker provider against the project's own Docker engine and locally built images."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis as redis_py

from pytest_cleanroom.services import cleanup, docker_provider, kinds
from pytest_cleanroom.services.errors import ServiceUnavailableError
from pytest_cleanroom.services.isolation import DatabaseFactory
from pytest_cleanroom.services.model import RedisDatabase
from pytest_cleanroom.services.providers import choose, docker_status
from pytest_cleanroom.services.registry import Owner, Registry
from pytest_cleanroom.services.settings import ServiceSettings
from pytest_cleanroom.services.spawn import free_port
from tests.conftest import require

from ..nobody import answer_as_nobody, root_only_socket
from .conftest import docker_client

pytestmark = pytest.mark.integration


def published(container_name: str) -> list[str]:
    client = docker_client()
    try:
        ports = client.containers.get(container_name).attrs["HostConfig"]["PortBindings"]
    finally:
        client.close()
    return [binding["HostIp"] for bindings in ports.values() for binding in bindings]


def container_exists(name: str) -> bool:
    import docker.errors

    client = docker_client()
    try:
        client.containers.get(name)
        return True
    except docker.errors.NotFound:
        return False
    finally:
        client.close()


@pytest.mark.docker
@pytest.mark.usefixtures("need_docker")
def test_postgres_container_is_loopback_only_labelled_and_reachable_by_socket(
    settings: ServiceSettings, runtime_dir: Path
) -> None:
    owner = Owner.current()
    started = docker_provider.start_postgres(settings, run_id="dk1", owner=owner)
    name = started.handle["name"]
    try:
        server = started.server
        assert server.provider == "docker"
        assert published(name) == ["127.0.0.1"]
        assert server.unix_socket_dir is not None
        with server.connect(autocommit=True) as conn:  # through the bind-mounted socket
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
            conn.execute("CREATE DATABASE scratch")
        # The plugin's pg_hba.conf, not the image's: no password, no entry, even on the socket
        # (the image's own rules trust every local connection).
        without = {**server.params(via_socket=True), "password": None}
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(**without, connect_timeout=5)
        factory = DatabaseFactory(server, "template0", "cr_dk1_", background=False)
        mine, other = factory.create(), factory.create()
        with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
            psycopg.connect(**{**mine.params(via_socket=True), "dbname": other.dbname})
        with psycopg.connect(mine.url_for("libpq", via_socket=True)) as conn:
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert row.fetchone() == (False,)
        factory.close()
        client = docker_client()
        labels = client.containers.get(name).labels
        client.close()
        assert labels["io.cleanroom.run"] == "dk1"
        assert labels["io.cleanroom.owner-pid"] == str(owner.pid)
        assert labels["io.cleanroom.owner-start"] == owner.token
        assert labels["io.cleanroom.role"] == "postgres"
        assert "database system is ready" in server.log_tail()
    finally:
        cleanup.stop(started.handle)
        started.registry.remove(started.record_id)
    assert not container_exists(name)
    assert not Path(started.handle["server_dir"]).exists()


@pytest.mark.docker
@pytest.mark.usefixtures("need_docker")
def test_redis_container_is_loopback_only_and_removed(
    settings: ServiceSettings, runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from testcontainers.core.config import testcontainers_config

    # The reaper left on, as by a user who never heard of it: its image cannot be pulled here,
    # so the start below works only because the provider switches it off itself.
    monkeypatch.delenv("TESTCONTAINERS_RYUK_DISABLED", raising=False)
    monkeypatch.setattr(testcontainers_config, "_ryuk_disabled", False)
    port = free_port()
    settings = settings.with_changes(redis_port=port)
    started = docker_provider.start_redis(settings, run_id="dk2", owner=Owner.current())
    name = started.handle["name"]
    try:
        assert testcontainers_config.ryuk_disabled
        assert published(name) == ["127.0.0.1"]
        assert started.server.port == port  # cleanroom_redis_port is honoured
        client = started.server.client(3)
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert started.server.databases >= 16
        assert started.server.unix_socket is not None
        sandbox = redis_py.Redis.from_url(
            RedisDatabase(started.server, 3).sandbox_env()["REDIS_URL"]
        )
        assert sandbox.get("k") == b"v"
        with pytest.raises(redis_py.exceptions.NoPermissionError):
            sandbox.config_set("maxmemory", "1mb")
        sandbox.close()
    finally:
        cleanup.stop(started.handle)
        started.registry.remove(started.record_id)
    assert not container_exists(name)


@pytest.mark.docker
@pytest.mark.usefixtures("need_docker")
def test_a_missing_image_is_named_with_the_fix(
    settings: ServiceSettings, runtime_dir: Path
) -> None:
    settings = settings.with_changes(postgres_image="cleanroom/no-such-image:0")
    with pytest.raises(ServiceUnavailableError) as info:
        docker_provider.start_postgres(settings, run_id="dk3", owner=Owner.current())
    assert "cleanroom/no-such-image:0" in str(info.value)
    assert "cleanroom_postgres_image" in str(info.value)
    assert list(Registry(runtime_dir).records()) == []
    assert [p.name for p in runtime_dir.iterdir() if p.name != "registry"] == []


@pytest.fixture
def dead_docker_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A Docker socket file whose engine is down: the file exists, nobody listens."""
    path = Path(f"/tmp/crd-{os.getpid()}.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()  # the file stays behind, as after a crashed dockerd
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def mute_docker_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A Docker socket that accepts connections and never answers (a hung engine)."""
    path = Path(f"/tmp/crm-{os.getpid()}.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
    yield path
    server.close()
    for conn in held:
        conn.close()
    path.unlink()


def test_socket_present_but_engine_down_is_a_clear_error(
    dead_docker_socket: Path, settings: ServiceSettings, runtime_dir: Path
) -> None:
    ok, detail = docker_status()
    assert not ok
    expected = f"Docker socket unix://{dead_docker_socket} present but the engine does not answer"
    assert expected in detail
    with pytest.raises(ServiceUnavailableError, match="start dockerd"):
        docker_provider.start_postgres(settings, run_id="dn", owner=Owner.current())
    choice = choose("postgres", settings.with_changes(provider="docker"))
    assert choice.provider is None
    assert "present but the engine does not answer" in choice.reason
    assert list(Registry(runtime_dir).records()) == []


def test_a_hung_engine_fails_within_the_timeout(
    mute_docker_socket: Path, settings: ServiceSettings
) -> None:
    settings = settings.with_changes(start_timeout=1.0)
    with pytest.raises(ServiceUnavailableError, match="did not answer within 1s"):
        docker_provider.start_redis(settings, run_id="hung", owner=Owner.current())


def test_no_socket_at_all_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    ok, detail = docker_status()
    assert not ok
    assert detail == f"no Docker socket at {tmp_path}/none.sock"


def test_a_socket_the_user_may_not_open_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """As a user outside the socket's group: the fix is permissions, not starting an engine."""
    require(os.geteuid() == 0, "root, to run the check as the 'nobody' user")
    docker_only = ServiceSettings(provider="docker", provider_source="--cleanroom-services")
    kinds.kinds()  # the entry points, loaded before the child drops its rights
    with root_only_socket() as path:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{path}")
        answer = answer_as_nobody(
            lambda: repr((docker_status(), choose("postgres", docker_only).reason))
        )
    assert answer.startswith("((False, "), answer
    assert f"permission denied on the Docker socket unix://{path}" in answer
    assert "add your user to the docker group or fix the socket's permissions" in answer
    assert "does not answer" not in answer
    assert "start dockerd" not in answer  # the engine runs: the fix is the socket's permissions
