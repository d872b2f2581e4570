"""The container providers (docker, podman) against the project's own engines and locally built
images: every check runs on both engines."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import redis as redis_py

from pytest_cleanroom.services import cleanup, kinds
from pytest_cleanroom.services.engines import DOCKER, ENGINES, PODMAN, ContainerEngine
from pytest_cleanroom.services.errors import ServiceStartError, ServiceUnavailableError
from pytest_cleanroom.services.postgres.isolation import DatabaseFactory
from pytest_cleanroom.services.providers import choose
from pytest_cleanroom.services.redis import RedisDatabase
from pytest_cleanroom.services.registry import Owner, Registry, Started
from pytest_cleanroom.services.settings import ServiceSettings
from pytest_cleanroom.services.spawn import free_port
from tests.conftest import require

from ..nobody import answer_as_nobody, root_only_socket
from .conftest import docker_client, mute_socket

pytestmark = pytest.mark.integration

#: The variable that points each engine at its socket.
HOST_VARIABLE = {"docker": "DOCKER_HOST", "podman": "CLEANROOM_PODMAN_HOST"}


def start(service: str, engine: ContainerEngine, settings: ServiceSettings, run: str) -> Started:
    """``service``'s server on ``engine``, started as the hub starts it (through its kind)."""
    starter = kinds.kind(service).starter(engine.name)
    return starter(settings, run_id=run, owner=Owner.current())  # type: ignore[no-any-return]


@contextlib.contextmanager
def started_on(
    engine: ContainerEngine, service: str, settings: ServiceSettings, run: str
) -> Iterator[Started]:
    """``service``'s server on ``engine`` for the ``with`` block; then stopped, and nothing of it
    (container, socket directory) is left."""
    started = start(service, engine, settings, run)
    try:
        yield started
    finally:
        cleanup.stop(started.handle)
        started.registry.remove(started.record_id)
    assert not container_exists(engine, started.handle["name"])
    assert not Path(started.handle["server_dir"]).exists()


def published(engine: ContainerEngine, container_name: str) -> list[str]:
    client = docker_client(engine)
    try:
        ports = client.containers.get(container_name).attrs["HostConfig"]["PortBindings"]
    finally:
        client.close()
    # Podman lists the image's exposed ports that are not published with no binding.
    return [binding["HostIp"] for bindings in ports.values() for binding in bindings or ()]


def container_exists(engine: ContainerEngine, name: str) -> bool:
    import docker.errors

    client = docker_client(engine)
    try:
        client.containers.get(name)
        return True
    except docker.errors.NotFound:
        return False
    finally:
        client.close()


def test_postgres_container_is_loopback_only_labelled_and_reachable_by_socket(
    engine: ContainerEngine, settings: ServiceSettings, runtime_dir: Path
) -> None:
    owner = Owner.current()
    with started_on(engine, "postgres", settings, "dk1") as started:
        name = started.handle["name"]
        server = started.server
        assert server.provider == engine.name
        assert published(engine, name) == ["127.0.0.1"]
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
        mine, other = factory.isolate(), factory.isolate()
        with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
            psycopg.connect(**{**mine.params(via_socket=True), "dbname": other.dbname})
        with psycopg.connect(mine.url_for("libpq", via_socket=True)) as conn:
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert row.fetchone() == (False,)
        factory.close()
        client = docker_client(engine)
        labels = client.containers.get(name).labels
        client.close()
        assert labels["io.cleanroom.run"] == "dk1"
        assert labels["io.cleanroom.owner-pid"] == str(owner.pid)
        assert labels["io.cleanroom.owner-start"] == owner.token
        assert labels["io.cleanroom.role"] == "postgres"
        assert "database system is ready" in server.log_tail()


def test_redis_container_is_loopback_only_and_removed(
    engine: ContainerEngine,
    settings: ServiceSettings,
    runtime_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from testcontainers.core.config import testcontainers_config

    # The reaper left on, as by a user who never heard of it: its image cannot be pulled here,
    # so the start below works only because the provider switches it off itself.
    monkeypatch.delenv("TESTCONTAINERS_RYUK_DISABLED", raising=False)
    monkeypatch.setattr(testcontainers_config, "_ryuk_disabled", False)
    port = free_port()
    settings = settings.with_changes(redis_port=port)
    with started_on(engine, "redis", settings, "dk2") as started:
        name = started.handle["name"]
        assert started.server.provider == engine.name
        assert testcontainers_config.ryuk_disabled
        assert published(engine, name) == ["127.0.0.1"]
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


def test_mysql_container_is_loopback_only_and_removed(
    engine: ContainerEngine, settings: ServiceSettings, runtime_dir: Path
) -> None:
    with started_on(engine, "mysql", settings, "dk4") as started:
        name = started.handle["name"]
        server = started.server
        assert server.provider == engine.name
        assert published(engine, name) == ["127.0.0.1"]
        assert server.unix_socket is not None  # the bind-mounted socket directory
        with server.connect() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT @@port, CURRENT_USER()")
            assert cursor.fetchone() == (3306, "root@localhost")
        tcp = replace(server, unix_socket=None)
        with tcp.connect() as conn, conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            assert cursor.fetchone() == (1,)


def test_a_missing_image_is_named_with_the_fix(
    engine: ContainerEngine, settings: ServiceSettings, runtime_dir: Path
) -> None:
    settings = settings.with_changes(postgres_image="cleanroom/no-such-image:0")
    with pytest.raises(ServiceUnavailableError) as info:
        start("postgres", engine, settings, "dk3")
    assert "cleanroom/no-such-image:0" in str(info.value)
    assert "cleanroom_postgres_image" in str(info.value)
    assert engine.images_fix in str(info.value)
    assert list(Registry(runtime_dir).records()) == []
    assert [p.name for p in runtime_dir.iterdir() if p.name != "registry"] == []


def test_a_server_that_never_answers_fails_at_the_start_timeout_with_its_log(
    engine: ContainerEngine, settings: ServiceSettings, runtime_dir: Path
) -> None:
    # listen_addresses '': the server runs, on its unix socket only, so it never answers the
    # provider's probe over TCP.
    settings = settings.with_changes(
        start_timeout=5.0, postgres_settings=(("listen_addresses", "''"),)
    )
    with pytest.raises(ServiceStartError, match="not ready before the start timeout") as info:
        start("postgres", engine, settings, "dk5")
    assert "raise cleanroom_services_start_timeout" in str(info.value)
    assert "its log:" in str(info.value)
    client = docker_client(engine)
    try:
        assert client.containers.list(all=True, filters={"name": "cleanroom-dk5-"}) == []
    finally:
        client.close()
    assert list(Registry(runtime_dir).records()) == []
    assert [p.name for p in runtime_dir.iterdir() if p.name != "registry"] == []


#: Each engine, for the checks of a broken engine (none needs a running one).
EACH_ENGINE = pytest.mark.parametrize("broken", list(ENGINES.values()), ids=list(ENGINES))


@pytest.fixture
def dead_socket(tmp_path: Path) -> Iterator[Path]:
    """A socket file whose engine is down: the file exists, nobody listens."""
    path = Path(f"/tmp/crd-{os.getpid()}.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()  # the file stays behind, as after a crashed dockerd or podman service
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def hung_socket() -> Iterator[Path]:
    """A socket that accepts connections and never answers (a hung engine)."""
    path = Path(f"/tmp/crm-{os.getpid()}.sock")
    with mute_socket(path):
        yield path


def point(monkeypatch: pytest.MonkeyPatch, engine: ContainerEngine, path: Path) -> None:
    """Point ``engine`` at the socket ``path``, as its user would with its variable."""
    monkeypatch.setenv(HOST_VARIABLE[engine.name], f"unix://{path}")


@EACH_ENGINE
def test_socket_present_but_engine_down_is_a_clear_error(
    broken: ContainerEngine,
    dead_socket: Path,
    settings: ServiceSettings,
    runtime_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point(monkeypatch, broken, dead_socket)
    ok, detail = broken.status()
    assert not ok
    down = f"{broken.noun} socket unix://{dead_socket} present but the {broken.server} does not"
    assert down in detail
    with pytest.raises(ServiceUnavailableError) as info:
        start("postgres", broken, settings, "dn")
    assert broken.start_fix in str(info.value)
    choice = choose("postgres", settings.with_changes(provider=broken.name))
    assert choice.provider is None
    assert down in choice.reason
    assert broken.start_fix in choice.reason
    assert list(Registry(runtime_dir).records()) == []


@EACH_ENGINE
def test_a_hung_engine_fails_within_the_timeout(
    broken: ContainerEngine,
    hung_socket: Path,
    settings: ServiceSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    point(monkeypatch, broken, hung_socket)
    settings = settings.with_changes(start_timeout=1.0)
    with pytest.raises(ServiceUnavailableError, match="did not answer within 1s"):
        start("redis", broken, settings, "hung")


@EACH_ENGINE
def test_no_socket_at_all_is_named(
    broken: ContainerEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point(monkeypatch, broken, tmp_path / "none.sock")
    ok, detail = broken.status()
    assert not ok
    assert detail == f"no {broken.noun} socket at {tmp_path}/none.sock"


def test_podman_not_installed_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: ServiceSettings
) -> None:
    """A machine without podman (a PATH without it) and without a socket: install, then start."""
    point(monkeypatch, PODMAN, tmp_path / "none.sock")
    monkeypatch.setenv("PATH", str(tmp_path))
    choice = choose("mysql", settings.with_changes(provider="podman"))
    assert choice.provider is None
    assert "Podman is not installed (no podman on PATH" in choice.reason
    assert "apt-get install podman" in choice.reason
    assert "scripts/podman-engine.sh start" in choice.reason


@EACH_ENGINE
def test_a_socket_the_user_may_not_open_says_so(
    broken: ContainerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a user outside the socket's group: the fix is permissions, not starting an engine."""
    require(os.geteuid() == 0, "root, to run the check as the 'nobody' user")
    only = ServiceSettings(provider=broken.name, provider_source="--cleanroom-services")
    kinds.kinds()  # the entry points, loaded before the child drops its rights
    with root_only_socket() as path:
        point(monkeypatch, broken, path)
        answer = answer_as_nobody(lambda: repr((broken.status(), choose("postgres", only).reason)))
    assert answer.startswith("((False, "), answer
    assert f"permission denied on the {broken.noun} socket unix://{path}" in answer
    assert broken.permission_fix in answer
    assert "does not answer" not in answer
    assert broken.start_fix not in answer  # the engine runs: the fix is the socket's permissions


def test_the_docker_wording_is_kept() -> None:
    """Users and scripts read these sentences: the fixes name Docker's own remedies."""
    assert DOCKER.permission_fix == (
        "add your user to the docker group or fix the socket's permissions"
    )
    assert DOCKER.start_fix == "start dockerd, or set DOCKER_HOST to its socket"
