"""One server per run, shared by every xdist worker.

The first process that needs a service takes a file lock in the run's shared temporary directory
(the controller's basetemp; under xdist, the parent of each worker's basetemp), starts the server
and writes its description next to the lock. Everybody else reads that file. A failed start is
written there too, so that every test reports the same error at once instead of trying again.
The controller stops everything at the end of the session (:func:`teardown_run`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import errors as service_errors
from .errors import ServiceError, ServiceStartError
from .kinds import kind
from .protocol import STATE_DIR_NAME, Exposure, RunContext, ServiceKind
from .providers import Choice, choose
from .registry import Registry, read_json, write_json_atomic
from .settings import ServiceSettings

__all__ = ["STATE_DIR_NAME", "RunContext", "ServiceHub", "new_run_id", "teardown_run"]


def new_run_id() -> str:
    return secrets.token_hex(4)


def _raise_recorded(data: dict[str, Any]) -> None:
    if data.get("error"):
        cls = getattr(service_errors, str(data.get("error_type")), ServiceStartError)
        if not (isinstance(cls, type) and issubclass(cls, ServiceError)):
            cls = ServiceStartError
        raise cls(data["error"])


class ServiceHub:
    """This process's door to the run's shared servers, whatever their kind."""

    def __init__(
        self, settings: ServiceSettings, run: RunContext, choices: dict[str, Choice] | None = None
    ) -> None:
        self.settings = settings
        self.run = run
        #: Made once by the controller (see plugin.pytest_configure) and handed to the workers;
        #: shared, not copied: hubs of one run given the same dict choose once between them.
        self._choices: dict[str, Choice] = {} if choices is None else choices
        self._state: dict[str, dict[str, Any]] = {}
        self._exposed_dirs: set[Path] = set()

    def choice(self, service: str) -> Choice:
        if service not in self._choices:
            self._choices[service] = choose(service, self.settings)
        return self._choices[service]

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

    def server(self, service: str, settings: ServiceSettings | None = None) -> Any:
        """The ``service`` kind's server (see :mod:`.protocol`), started on first use: one per
        run, or one per xdist worker for a ``per_worker`` kind. ``settings``: other server
        settings (a fixture factory's), another server."""
        k = kind(service)
        if k.client_module:  # a missing client is said before a server is started
            __import__(k.client_module)
        s = settings or self.settings
        key = k.state_key(s, self.run, self.choice(service).provider)

        def produce() -> dict[str, Any]:
            provider = self.choice(service).require()
            started = k.start(provider, s, self.run)
            state = _state(started.server, started.handle, started.record_id, self.settings)
            state.update(service=service, provider=provider, reason=self.choice(service).reason)
            return state

        data = self._shared(key, produce, self.settings.start_timeout + 30)
        _raise_recorded(data)
        return k.server_from_json(data["server"])

    def expose(self, service: ServiceKind[Any, Any], handle: Any) -> Exposure:
        """What ``service`` gives a sandboxed command of ``handle``'s test; its socket directory
        is remembered as one of the run's (see :meth:`socket_dirs`)."""
        exposure = service.expose(handle)
        if exposure.socket_dir is not None:
            self._exposed_dirs.add(Path(exposure.socket_dir).resolve())
        return exposure

    def socket_dirs(self) -> set[Path]:
        """The unix-socket directories of the run's servers that this process handed to a test:
        the only directories a test's cleanroom may expose as services."""
        return set(self._exposed_dirs)


def _state(
    server: Any, handle: dict[str, Any], record_id: str | None, s: ServiceSettings
) -> dict[str, Any]:
    return {
        "server": server.to_json(),
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
