"""One server per run, shared by every xdist worker.

The first process that needs a service takes a file lock in the run's shared temporary directory
(the controller's basetemp; under xdist, the parent of each worker's basetemp), starts the server
and writes its description next to the lock. Everybody else reads that file. A failed start is
written there too, so that every test reports the same error at once instead of trying again.
The controller stops everything at the end of the session (:func:`teardown_run`).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import errors as service_errors
from .errors import ServiceConfigError, ServiceError, ServiceStartError
from .kinds import kind
from .model import PostgresServer, RedisServer
from .mysql import MysqlServer
from .providers import Choice, choose
from .registry import Owner, Registry, Started, read_json, write_json_atomic
from .settings import ServiceSettings

STATE_DIR_NAME = "cleanroom-services"


def new_run_id() -> str:
    return secrets.token_hex(4)


@dataclass(frozen=True)
class RunContext:
    """Who we are in the run: its id and owner, the shared directory, this worker."""

    run_id: str
    owner: Owner
    shared_dir: Path
    worker_id: str = "master"
    worker_count: int = 1

    @property
    def worker_index(self) -> int:
        """0 for ``master`` (no xdist), N for ``gwN``."""
        digits = "".join(c for c in self.worker_id if c.isdigit())
        return int(digits) if self.worker_id != "master" and digits else 0

    @property
    def state_dir(self) -> Path:
        return self.shared_dir / STATE_DIR_NAME

    @property
    def db_prefix(self) -> str:
        """Every database this run creates starts with this (``cr_<run>_``)."""
        return f"cr_{self.run_id}_"

    @property
    def template_name(self) -> str:
        return f"{self.db_prefix}template"


def _raise_recorded(data: dict[str, Any]) -> None:
    if data.get("error"):
        cls = getattr(service_errors, str(data.get("error_type")), ServiceStartError)
        if not (isinstance(cls, type) and issubclass(cls, ServiceError)):
            cls = ServiceStartError
        raise cls(data["error"])


class ServiceHub:
    """This process's door to the run's shared servers."""

    def __init__(
        self, settings: ServiceSettings, run: RunContext, choices: dict[str, Choice] | None = None
    ) -> None:
        self.settings = settings
        self.run = run
        #: Made once by the controller (see plugin.pytest_configure) and handed to the workers.
        self._choices: dict[str, Choice] = dict(choices or {})
        self._state: dict[str, dict[str, Any]] = {}

    def choice(self, service: str) -> Choice:
        if service not in self._choices:
            self._choices[service] = choose(service, self.settings)
        return self._choices[service]

    # -- shared state ---------------------------------------------------------------------------

    def _shared(
        self, key: str, produce: Callable[[], dict[str, Any]], timeout: float | None
    ) -> dict[str, Any]:
        """The state ``key`` of the run: read it, or produce it once under the run's lock."""
        from filelock import FileLock, Timeout

        if key in self._state:
            return self._state[key]
        path = self.run.state_dir / f"{key}.json"
        data = read_json(path)
        if data is None:
            self.run.state_dir.mkdir(parents=True, exist_ok=True)
            lock = FileLock(
                str(self.run.state_dir / f"{key}.lock"), timeout=-1 if timeout is None else timeout
            )
            try:
                with lock:
                    data = read_json(path)
                    if data is None:
                        try:
                            data = produce()
                        except ServiceError as exc:
                            data = {"error": str(exc), "error_type": type(exc).__name__}
                        write_json_atomic(path, data)
            except Timeout:
                raise ServiceStartError(
                    f"waited {timeout:g}s for another pytest-xdist worker to start {key} "
                    "(raise cleanroom_services_start_timeout if the machine is slow)"
                ) from None
        self._state[key] = data
        return data

    def once(self, key: str, produce: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The result of ``produce()``, run by one process of the run under the run's lock (no
        time limit: a builder may migrate for long); a recorded error is raised again. A builder
        that dies releases the lock and the next one produces again: ``produce`` must cope
        with a half-done predecessor."""
        data = self._shared(key, produce, None)
        _raise_recorded(data)
        return data

    def _start(
        self, service: str, start: Callable[[str], dict[str, Any]], key: str | None = None
    ) -> dict[str, Any]:
        def produce() -> dict[str, Any]:
            provider = self.choice(service).require()
            state = start(provider)
            state.update(service=service, provider=provider, reason=self.choice(service).reason)
            return state

        data = self._shared(key or service, produce, self.settings.start_timeout + 30)
        _raise_recorded(data)
        return data

    def socket_dirs(self) -> set[Path]:
        """The unix-socket directories of the run's servers that this process uses (starts
        none): the only directories a test's cleanroom may expose as services."""
        dirs: set[Path] = set()
        for data in self._state.values():  # "postgres", "mysql", "redis" or "redis-<worker>"
            if "server" not in data:
                continue
            if data.get("service") == "postgres":
                socket_dir = PostgresServer.from_json(data["server"]).unix_socket_dir
                if socket_dir:
                    dirs.add(Path(socket_dir).resolve())
            elif data.get("service") in ("redis", "mysql"):
                socket = data["server"].get("unix_socket")
                if socket:
                    dirs.add(Path(socket).resolve().parent)
        return dirs

    # -- postgres -------------------------------------------------------------------------------

    def postgres_server(self, settings: ServiceSettings | None = None) -> PostgresServer:
        """The run's PostgreSQL server, started on first use (``settings``: the one with other
        server settings, see :mod:`.factories`)."""
        import psycopg  # noqa: F401  (missing client: say so before starting a server)

        s = settings or self.settings
        key = self.postgres_key(settings=s)
        data = self._start("postgres", lambda provider: self._start_postgres(provider, s), key)
        return PostgresServer.from_json(data["server"])

    def postgres_key(
        self,
        what: str = "postgres",
        *,
        settings: ServiceSettings | None = None,
        extensions: tuple[str, ...] = (),
    ) -> str:
        """The state key of the run's PostgreSQL server (or its template): server settings,
        major version and binaries are part of a server's identity, so two configurations get
        two servers (and a template with other extensions is another template)."""
        identity = (settings or self.settings).postgres_identity
        return _keyed(what, (identity, extensions) if extensions else identity)

    def _start_server(
        self, service: str, provider: str, settings: ServiceSettings | None = None
    ) -> dict[str, Any]:
        """Start the run's ``service`` server with the process, docker or podman provider (their
        modules are imported only here: they load psycopg, redis-py or testcontainers)."""
        start: Callable[..., Started[Any]] = kind(service).starter(provider)
        started = start(settings or self.settings, run_id=self.run.run_id, owner=self.run.owner)
        return _state(started.server.to_json(), started.handle, started.record_id, self.settings)

    def _start_postgres(self, provider: str, settings: ServiceSettings) -> dict[str, Any]:
        if provider != "external":
            return self._start_server("postgres", provider, settings)
        from .external import connect_postgres

        if settings.postgres_settings:
            raise ServiceConfigError(
                "ini cleanroom_postgres_settings cannot be applied to an external server: set "
                "them on that server, or let the plugin start its own (process, docker or podman)"
            )

        s, run = self.settings, self.run
        assert s.postgres_url is not None
        server = connect_postgres(s.postgres_url, s.postgres_url_source, s.start_timeout)
        settings.check_postgres_major(server.version_num, f"the server of {s.postgres_url_source}")
        handle = {"kind": "external-postgres", "url": s.postgres_url, "prefix": run.db_prefix}
        record_id = Registry(s.runtime_dir).add(
            service="postgres", run_id=run.run_id, owner=run.owner, handle=handle
        )
        return _state(server.to_json(), handle, record_id, s)

    def template(
        self, settings: ServiceSettings | None = None, extensions: tuple[str, ...] = ()
    ) -> str:
        """Name of the run's template database, loaded once per run (per server and set of
        ``extensions``, created in it first).

        Without template entries and extensions every test starts from PostgreSQL's pristine
        ``template0``: the same empty database, one clone less on first use. When the server
        manages roles, the template's objects belong to a role of the same name (see
        :mod:`.template`).
        """
        s = settings or self.settings
        server = self.postgres_server(s)
        if not s.postgres_template and not extensions:
            return "template0"
        name = _keyed(self.run.template_name, extensions, "_")

        def produce() -> dict[str, Any]:
            from .template import build

            build(server, name, s.postgres_template, s.base_dir, extensions)
            return {"name": name}

        key = self.postgres_key("postgres-template", settings=s, extensions=extensions)
        return str(self.once(key, produce)["name"])

    # -- mysql ----------------------------------------------------------------------------------

    def mysql_server(self) -> MysqlServer:
        """The run's MariaDB server, started on first use and shared by every xdist worker."""
        import pymysql  # noqa: F401  (missing client: say so before starting a server)

        return MysqlServer.from_json(self.server("mysql"))

    def server(self, service: str) -> dict[str, Any]:
        """The JSON form of the ``service`` kind's server (see :mod:`.kinds`), started on first
        use: one per run, or one per xdist worker for a ``per_worker`` kind. What a fixture of a
        third party's kind builds its server object from."""
        key = f"{service}-{self.run.worker_id}" if kind(service).per_worker else service
        data = self._start(service, lambda provider: self._start_server(service, provider), key)
        server: dict[str, Any] = data["server"]
        return server

    # -- redis ----------------------------------------------------------------------------------

    def redis_server(self, settings: ServiceSettings | None = None) -> RedisServer:
        """This worker's Redis server, started on first use: one per xdist worker (the process
        and container providers), so that server-wide state (pub/sub, CONFIG, functions) stays
        within one worker; an external server is shared by all. ``settings``: the one with other
        server settings (see :mod:`.factories`)."""
        import redis  # noqa: F401  (missing client: say so before starting a server)

        s = settings or self.settings
        shared = self.choice("redis").provider == "external"
        key = _keyed("redis", s.redis_settings)
        key = key if shared else f"{key}-{self.run.worker_id}"
        data = self._start("redis", lambda provider: self._start_redis(provider, s), key)
        return RedisServer.from_json(data["server"])

    def _start_redis(self, provider: str, settings: ServiceSettings) -> dict[str, Any]:
        if provider != "external":
            if settings.redis_port:  # a fixed port: worker gwN listens on port + N
                settings = settings.with_changes(
                    redis_port=settings.redis_port + self.run.worker_index
                )
            return self._start_server("redis", provider, settings)
        from .external import connect_redis

        if settings.redis_settings:
            raise ServiceConfigError(
                "Redis server settings (ini cleanroom_redis_settings or a fixture factory) cannot "
                "be applied to an external server: set them on that server, or let the plugin "
                "start its own (process, docker or podman)"
            )
        s = self.settings
        assert s.redis_url is not None
        server = connect_redis(s.redis_url, s.redis_url_source, s.start_timeout)
        return _state(server.to_json(), {"kind": "external-redis"}, None, s)


def _keyed(name: str, identity: object, separator: str = "-") -> str:
    """``name``, followed by a digest of ``identity`` when there is one."""
    if not identity:
        return name
    return f"{name}{separator}{hashlib.sha256(repr(identity).encode()).hexdigest()[:8]}"


def _state(
    server: dict[str, Any], handle: dict[str, Any], record_id: str | None, s: ServiceSettings
) -> dict[str, Any]:
    return {
        "server": server,
        "handle": handle,
        "record_id": record_id,
        "runtime_dir": str(s.runtime_dir),
    }


def teardown_run(state_dir: Path) -> list[str]:
    """Stop every server the run started (controller side); returns problems worth reporting."""
    from .cleanup import stop

    problems: list[str] = []
    if not state_dir.is_dir():
        return problems
    for path in sorted(state_dir.glob("*.json")):
        data = read_json(path)
        if not data or "handle" not in data:
            continue
        try:
            stop(data["handle"])
        except Exception as exc:
            problems.append(f"could not stop {data.get('service')}: {exc}")
            continue
        if data.get("record_id"):
            Registry(Path(data["runtime_dir"])).remove(str(data["record_id"]))
        os.replace(path, path.with_suffix(".stopped"))
    return problems
