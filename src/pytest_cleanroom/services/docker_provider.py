"""The docker provider: PostgreSQL and Redis containers started through testcontainers.

Ports are published on 127.0.0.1 only. The server's unix socket directory is bind-mounted from a
private host directory, so tests and sandboxes can use the socket as with the process provider.
Containers carry labels naming the run and its owner, and each is recorded in the leftovers
registry before it is created: testcontainers' reaper (Ryuk) is not needed, and a crashed run's
containers are removed by the next run.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import pg_roles
from .errors import ServiceStartError, ServiceUnavailableError
from .model import LogSource, PostgresServer, RedisServer
from .providers import docker_host, docker_status, with_docker_fix
from .redis_acl import ADMIN_USER, acl_config
from .registry import Handle, Owner, Registry, Started, ensure_private_dir
from .spawn import candidate_ports

if TYPE_CHECKING:
    from .settings import ServiceSettings

POSTGRES_USER = "cleanroom"
CONTAINER_HBA = "/etc/cleanroom/pg_hba.conf"
REDIS_DATABASES = 64


#: What :func:`start_postgres` and :func:`start_redis` return.
StartedContainer = Started[Any]


def labels(run_id: str, owner: Owner, service: str) -> dict[str, str]:
    """The project's ownership labels (see :mod:`pytest_cleanroom.containers.ownership`), naming
    the run's owner (the controller, not the worker that happens to start the container), so
    that :func:`~pytest_cleanroom.containers.ownership.sweep_leftovers` removes it once that owner
    is dead."""
    from ..containers.ownership import owner_labels

    return owner_labels(run_id, role=service, owner=owner)


def _client(host: str | None = None, timeout: float = 30.0) -> Any:
    # Looked up dynamically: under mypy, the repository's docker/ directory shadows the SDK.
    client_class: Any = getattr(importlib.import_module("docker"), "DockerClient")  # noqa: B009
    return client_class(base_url=host or docker_host(), timeout=int(max(5, timeout)))


def reaper_off() -> None:
    """Switch testcontainers' reaper (Ryuk) off: it would pull an image and build its own client
    on /var/run/docker.sock, and it could remove a run's shared containers while other workers
    still use them. The plugin removes its containers itself (registry, labels, sweep)."""
    from testcontainers.core.config import testcontainers_config

    testcontainers_config.ryuk_disabled = True


def _client_kw(settings: ServiceSettings) -> dict[str, Any]:
    """testcontainers' client on our engine (it reads only DOCKER_HOST, not the project's)."""
    reaper_off()
    return {
        "timeout": int(max(5, settings.start_timeout)),
        "environment": {**os.environ, "DOCKER_HOST": docker_host()},
    }


def _check_engine(settings: ServiceSettings) -> None:
    ok, detail = docker_status(min(5.0, settings.start_timeout))
    if not ok:
        raise ServiceUnavailableError(f"docker provider: {with_docker_fix(detail)}")


def _ensure_image(client: Any, image: str, ini_key: str) -> None:
    import docker.errors

    try:
        client.images.get(image)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image)
    except docker.errors.APIError as exc:
        raise ServiceUnavailableError(
            f"docker provider: image {image} is not in the engine and cannot be pulled "
            f"({exc.explanation or exc}): build it (scripts/build-images.sh in pytest-cleanroom's "
            f"repository) or set ini {ini_key} to an image that exists"
        ) from None


def _sweep_labelled() -> None:
    """Containers of crashed runs that escaped the registry (e.g. a wiped runtime directory)."""
    from ..containers.ownership import sweep_leftovers

    with contextlib.suppress(Exception):  # a sweep that fails must not stop this run
        sweep_leftovers()


def _prepare(
    settings: ServiceSettings, *, service: str, run_id: str, owner: Owner
) -> tuple[Path, str, Registry, str, Handle]:
    _check_engine(settings)
    _sweep_labelled()
    ensure_private_dir(settings.runtime_dir)
    token = secrets.token_hex(3)
    server_dir = settings.runtime_dir / f"{service[:2]}-{run_id}-{token}"
    name = f"cleanroom-{run_id}-{service}-{token}"
    registry = Registry(settings.runtime_dir)
    handle: Handle = {
        "kind": "container",
        "service": service,
        "name": name,
        "docker_host": docker_host(),
        "server_dir": str(server_dir),
    }
    record_id = registry.add(service=service, run_id=run_id, owner=owner, handle=handle)
    server_dir.mkdir(mode=0o700)  # keeps other users away from the open socket directory
    sock = server_dir / "sock"
    sock.mkdir()
    sock.chmod(0o777)  # the container's server user (some uid of the image) creates its socket here
    return server_dir, name, registry, record_id, handle


def _fail(container: Any, what: str, reason: str, handle: Handle) -> ServiceStartError:
    logs = ""
    with contextlib.suppress(Exception):
        logs = container.get_wrapped_container().logs(tail=30).decode(errors="replace")
    return ServiceStartError(f"{what} container {handle['name']}: {reason}; its log:\n{logs}")


def _host_ip(container: Any) -> str:
    # Ports are published on the engine host's loopback; testcontainers' own guess (a gateway
    # address when it believes it runs in a container) would not reach them.
    return "127.0.0.1"


def start_postgres(settings: ServiceSettings, *, run_id: str, owner: Owner) -> StartedContainer:
    """Start a PostgreSQL container (``cleanroom_postgres_image``) for this run."""

    deadline = time.monotonic() + settings.start_timeout
    server_dir, name, registry, record_id, handle = _prepare(
        settings, service="postgres", run_id=run_id, owner=owner
    )
    password = secrets.token_urlsafe(18)
    hba = server_dir / "pg_hba.conf"
    hba.write_text(pg_roles.hba_rules(POSTGRES_USER, address="all"))  # clients come through NAT
    hba.chmod(0o644)  # the directory above keeps other users out
    try:
        client = _client(timeout=settings.start_timeout)
        _ensure_image(client, settings.postgres_image, "cleanroom_postgres_image")
        _check_image_major(client, settings)

        def make(port: int) -> Any:
            # The server listens on the same port inside and outside, so that its unix socket
            # (.s.PGSQL.<port>, bind-mounted to the host) matches the published TCP port.
            container = (
                _quiet_postgres_class()(
                    settings.postgres_image,
                    port=port,
                    username=POSTGRES_USER,
                    password=password,
                    dbname="postgres",
                    driver=None,
                    docker_client_kw=_client_kw(settings),
                )
                .with_name(name)
                .with_kwargs(labels=labels(run_id, owner, "postgres"))
                .with_env("PGPORT", str(port))
                .with_env("POSTGRES_INITDB_ARGS", "--no-sync")
                .with_volume_mapping(str(server_dir / "sock"), "/var/run/postgresql", "rw")
                .with_volume_mapping(str(hba), CONTAINER_HBA, "ro")
                .with_tmpfs_mount("/var/lib/postgresql/data")
                .with_command(
                    f"postgres -c port={port} -c fsync=off -c synchronous_commit=off "
                    f"-c full_page_writes=off -c max_connections=200 -c hba_file={CONTAINER_HBA}"
                    + "".join(f" -c {k}={v}" for k, v in settings.postgres_settings)
                )
            )
            container.ports[f"{port}/tcp"] = ("127.0.0.1", port)  # loopback only
            return container

        container, port = start_on_free_port(
            make, settings.postgres_port, "cleanroom_postgres_port", "postgres", handle
        )
        host = _host_ip(container)
        version, version_num = _wait_postgres(container, host, port, password, deadline, handle)
        settings.check_postgres_major(version_num, f"image {settings.postgres_image}")
        socket_dir = server_dir / "sock"
        server = PostgresServer(
            provider="docker",
            host=host,
            port=port,
            user=POSTGRES_USER,
            password=password,
            unix_socket_dir=str(socket_dir) if (socket_dir / f".s.PGSQL.{port}").exists() else None,
            version=version,
            version_num=version_num,
            log=LogSource(kind="docker", container_id=name, docker_host=handle["docker_host"]),
            manages_roles=True,
        )
        return StartedContainer(server, handle, record_id, registry)
    except BaseException:
        with contextlib.suppress(Exception):
            remove_container(handle)
        registry.remove(record_id)
        raise


def start_on_free_port(
    make: Callable[[int], Any], fixed: int, ini_key: str, what: str, handle: Handle
) -> tuple[Any, int]:
    """Start the container ``make(port)`` builds, publishing ``port`` on 127.0.0.1: the fixed
    one, or the next free one when another program took it meanwhile."""
    import docker.errors

    last_error = ""
    for port in candidate_ports(fixed, ini_key):
        container = make(port)
        try:
            container.start()
        except docker.errors.APIError as exc:
            if "already allocated" in str(exc) or "address already in use" in str(exc):
                last_error = str(exc)
                with contextlib.suppress(Exception):
                    remove_container(handle, keep_dir=True)
                continue
            raise _fail(container, what, f"did not start: {exc}", handle) from None
        return container, port
    raise ServiceStartError(
        f"{what} container could not publish a free port on 127.0.0.1: {last_error}"
    )


def _check_image_major(client: Any, settings: ServiceSettings) -> None:
    """Refuse, before starting it, an image whose ``PG_MAJOR`` (set by the official images and
    ours) is not the asked major; one without it is checked once it answers."""
    env = client.images.get(settings.postgres_image).attrs.get("Config", {}).get("Env") or []
    major = next((e.split("=", 1)[1] for e in env if e.startswith("PG_MAJOR=")), "")
    if major.isdigit():
        settings.check_postgres_major(int(major) * 10000, f"image {settings.postgres_image}")


def _quiet_postgres_class() -> Any:
    from testcontainers.community.postgres import PostgresContainer

    class QuietPostgres(PostgresContainer):
        """testcontainers' PostgresContainer without its exec-based wait: we poll over TCP."""

        def _connect(self) -> None:
            return None

    return QuietPostgres


def _wait_postgres(
    container: Any, host: str, port: int, password: str, deadline: float, handle: Handle
) -> tuple[str, int]:
    import psycopg

    last = ""
    while True:
        try:
            with psycopg.connect(
                host=host,
                port=port,
                user=POSTGRES_USER,
                password=password,
                dbname="postgres",
                connect_timeout=2,
                autocommit=True,
            ) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                # The official entrypoint's temporary server listens on the socket only, so a
                # TCP answer is the real server.
                pg_roles.secure_superuser(conn, POSTGRES_USER, password)
                return str(row[0] if row else "?").split()[0], conn.info.server_version
        except psycopg.OperationalError as exc:
            last = str(exc).strip()
        _still_starting(container, "postgres", handle, deadline, last)


def start_redis(settings: ServiceSettings, *, run_id: str, owner: Owner) -> StartedContainer:
    """Start a Redis container (``cleanroom_redis_image``) for this run."""
    from testcontainers.core.container import DockerContainer

    deadline = time.monotonic() + settings.start_timeout
    server_dir, name, registry, record_id, handle = _prepare(
        settings, service="redis", run_id=run_id, owner=owner
    )
    container: Any = None
    password, sandbox_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    conf = server_dir / "redis.conf"  # passwords in a file, not in the container's command line
    lines = [*acl_config(password, sandbox_password)]
    lines += [f"{name} {value}" for name, value in settings.redis_settings]
    conf.write_text("\n".join(lines) + "\n")
    conf.chmod(0o644)  # the directory above keeps other users out
    try:
        client = _client(timeout=settings.start_timeout)
        _ensure_image(client, settings.redis_image, "cleanroom_redis_image")
        container = (
            DockerContainer(
                settings.redis_image,
                docker_client_kw=_client_kw(settings),
            )
            .with_name(name)
            .with_kwargs(labels=labels(run_id, owner, "redis"))
            .with_volume_mapping(str(server_dir / "sock"), "/run/cleanroom", "rw")
            .with_volume_mapping(str(conf), "/etc/cleanroom/redis.conf", "ro")
            .with_command(
                "redis-server /etc/cleanroom/redis.conf --bind 0.0.0.0 --port 6379 "
                "--save '' --appendonly no "
                f"--databases {REDIS_DATABASES} "
                "--unixsocket /run/cleanroom/redis.sock --unixsocketperm 777"
            )
        )
        container.ports["6379/tcp"] = ("127.0.0.1", settings.redis_port or None)
        container.start()
        host, port = _host_ip(container), int(container.get_exposed_port(6379))
        version = _wait_redis(container, host, port, password, deadline, handle)
        socket_path = server_dir / "sock" / "redis.sock"
        server = RedisServer(
            provider="docker",
            host=host,
            port=port,
            password=password,
            unix_socket=str(socket_path) if socket_path.exists() else None,
            version=version,
            databases=REDIS_DATABASES,
            username=ADMIN_USER,
            log=LogSource(kind="docker", container_id=name, docker_host=handle["docker_host"]),
            sandbox_password=sandbox_password,
            dedicated=True,
        )
        return StartedContainer(server, handle, record_id, registry)
    except BaseException:
        with contextlib.suppress(Exception):
            remove_container(handle)
        registry.remove(record_id)
        raise


def _wait_redis(
    container: Any, host: str, port: int, password: str, deadline: float, handle: Handle
) -> str:
    import redis as redis_py

    last = ""
    while True:
        client = redis_py.Redis(
            host=host,
            port=port,
            username=ADMIN_USER,
            password=password,
            socket_timeout=2,
            socket_connect_timeout=2,
        )
        try:
            info = client.info("server")
            return str(info.get("redis_version", "?"))
        except redis_py.RedisError as exc:
            last = str(exc)
        finally:
            client.close()
        _still_starting(container, "redis", handle, deadline, last)


def _still_starting(container: Any, what: str, handle: Handle, deadline: float, last: str) -> None:
    """Between two readiness probes: raise if the container died or the start timeout passed
    (with its log and the probe's last error), else pause a moment."""
    container.get_wrapped_container().reload()
    status = container.get_wrapped_container().status
    if status in ("exited", "dead"):
        raise _fail(container, what, f"exited ({status})", handle)
    if time.monotonic() >= deadline:
        raise _fail(
            container,
            what,
            f"not ready before the start timeout (raise cleanroom_services_start_timeout); "
            f"last error: {last}",
            handle,
        )
    time.sleep(0.05)


def remove_container(handle: Handle, keep_dir: bool = False) -> str:
    """Remove a container (and its socket directory) by name; fine if it is already gone."""
    import docker.errors

    server_dir = handle.get("server_dir")
    try:
        client = _client(handle.get("docker_host"), timeout=30)
        try:
            client.containers.get(handle["name"]).remove(force=True, v=True)
            done = f"removed container {handle['name']}"
        except docker.errors.NotFound:
            done = f"container {handle['name']} already gone"
        finally:
            client.close()
    except docker.errors.DockerException as exc:
        raise ServiceStartError(
            f"cannot reach the Docker engine at {handle.get('docker_host')} to remove "
            f"{handle['name']}: {exc}"
        ) from None
    if server_dir and not keep_dir:
        shutil.rmtree(server_dir, ignore_errors=True)
    return done


def container_logs(log: LogSource, since: float | None, max_lines: int) -> str:
    """The container's log lines (since a timestamp), for failing tests' reports."""
    try:
        client = _client(log.docker_host, timeout=10)
        try:
            container = client.containers.get(log.container_id)
            kwargs: dict[str, Any] = {"tail": max_lines}
            if since is not None:
                kwargs["since"] = int(since)
            return bytes(container.logs(**kwargs)).decode(errors="replace")
        finally:
            client.close()
    except Exception as exc:
        return f"(container log unavailable: {exc})"
