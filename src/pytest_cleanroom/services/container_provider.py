"""The container provider: a kind's server in a container on Docker or Podman, one shared start.

:class:`ContainerService` is the whole start as a template method (testcontainers' ``DbContainer``
shape): check the engine, sweep dead owners' containers, record the server in the leftovers
registry before anything exists, make its private socket directory, write its files, check the
image, start the container publishing a free port on 127.0.0.1 only, wait until it answers
within the start timeout, and remove everything when any step fails. A kind writes only what
differs (:mod:`.postgres.container`, :mod:`.redis.container`, :mod:`.mysql.container`): its
files, its container, its readiness probe. The engine (:mod:`.engines`) is a parameter, so every
kind with a container runs on every engine. testcontainers' reaper (Ryuk) is not used:
containers carry labels naming the run and its owner, and a crashed run's are removed by the
next run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from .engines import ENGINES, ContainerEngine, client_at
from .errors import ServiceStartError, ServiceUnavailableError
from .model import LogSource
from .registry import Handle, Owner, Registry, Started, ensure_private_dir
from .spawn import candidate_ports

if TYPE_CHECKING:
    from .settings import ServiceSettings

ServerT = TypeVar("ServerT")


def labels(run_id: str, owner: Owner, service: str) -> dict[str, str]:
    """The project's ownership labels (see :mod:`pytest_cleanroom.containers.ownership`), naming
    the run's owner (the controller, not the worker that happens to start the container), so
    that :func:`~pytest_cleanroom.containers.ownership.sweep_leftovers` removes it once that owner
    is dead."""
    from ..containers.ownership import owner_labels

    return owner_labels(run_id, role=service, owner=owner)


def reaper_off() -> None:
    """Switch testcontainers' reaper (Ryuk) off: it would pull an image and build its own client
    on /var/run/docker.sock, and it could remove a run's shared containers while other workers
    still use them. The plugin removes its containers itself (registry, labels, sweep)."""
    from testcontainers.core.config import testcontainers_config

    testcontainers_config.ryuk_disabled = True


class ContainerService(ABC, Generic[ServerT]):
    """Starts one kind's server in a container for a run. Subclasses set the class attributes
    and write :meth:`image`, :meth:`container` and :meth:`probe`."""

    #: The kind's name (``postgres``); containers are labelled with it as their role.
    service: ClassVar[str]
    #: The ini key naming the image, said when the image is missing.
    image_key: ClassVar[str]
    #: The ini key of a fixed host port (said when it is taken).
    port_key: ClassVar[str]

    def __init__(
        self, engine: ContainerEngine, settings: ServiceSettings, *, run_id: str, owner: Owner
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.run_id = run_id
        self.owner = owner
        self.deadline = time.monotonic() + settings.start_timeout
        token = secrets.token_hex(3)
        self.name = f"cleanroom-{run_id}-{self.service}-{token}"
        #: Private to this server (0700): its socket directory and the files it mounts.
        self.server_dir = settings.runtime_dir / f"{self.service[:2]}-{run_id}-{token}"
        self.host = engine.host()
        self.handle: Handle = {
            "kind": "container",
            "engine": engine.name,
            "service": self.service,
            "name": self.name,
            "docker_host": self.host,
            "server_dir": str(self.server_dir),
        }

    # -- what a kind writes ---------------------------------------------------------------------

    @abstractmethod
    def image(self) -> str:
        """The image to run (from the settings)."""

    def fixed_port(self) -> int:
        """The host port asked for by the settings (``0``: any free one)."""
        return 0

    def prepare(self) -> None:
        """Write the files the container mounts into :attr:`server_dir` (created already)."""

    def check_image(self, client: Any) -> None:
        """Refuse an unfit image before starting it (``client``: the engine's docker SDK)."""

    @abstractmethod
    def container(self, port: int) -> Any:
        """The testcontainers container (made with :meth:`new_container`) publishing host
        ``port`` on 127.0.0.1, not started."""

    @abstractmethod
    def probe(self, port: int) -> ServerT:
        """The server, once it answers on ``port``; raises :meth:`starting_errors` before."""

    def starting_errors(self) -> tuple[type[Exception], ...]:
        """What :meth:`probe` raises while the server is still starting."""
        return (Exception,)

    # -- the shared start -----------------------------------------------------------------------

    def start(self) -> Started[ServerT]:
        """Start the server and return it with its record in the leftovers registry."""
        self._check_engine()
        self._sweep_labelled()
        ensure_private_dir(self.settings.runtime_dir)
        registry = Registry(self.settings.runtime_dir)
        record_id = registry.add(
            service=self.service, run_id=self.run_id, owner=self.owner, handle=self.handle
        )
        try:
            self.server_dir.mkdir(mode=0o700)  # keeps other users away from the open socket dir
            self.socket_dir.mkdir()
            self.socket_dir.chmod(0o777)  # the server's user (some uid of the image) binds here
            self.prepare()
            client = client_at(self.host, self.settings.start_timeout)
            try:
                self._ensure_image(client)
                self.check_image(client)
            finally:
                client.close()
            container, port = self._start_on_free_port()
            return Started(self._wait(container, port), self.handle, record_id, registry)
        except BaseException:
            with contextlib.suppress(Exception):
                remove_container(self.handle)
            registry.remove(record_id)
            raise

    @property
    def socket_dir(self) -> Path:
        """The host directory bind-mounted where the server puts its unix socket."""
        return self.server_dir / "sock"

    def socket_file(self, name: str) -> str | None:
        """``name`` in :attr:`socket_dir` if the server created it there (a local engine)."""
        path = self.socket_dir / name
        return str(path) if path.exists() else None

    def log(self) -> LogSource:
        """Where the server's log is read from."""
        return LogSource(kind="container", container_id=self.name, docker_host=self.host)

    def new_container(self, cls: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``cls(*args, **kwargs)`` (a testcontainers container class) on this engine, named,
        labelled with the run's owner, with the socket directory mounted at ``socket_mount``."""
        reaper_off()
        client_kw = {
            "timeout": int(max(5, self.settings.start_timeout)),
            # testcontainers reads only DOCKER_HOST, not the engine's own variable.
            "environment": {**os.environ, "DOCKER_HOST": self.host},
        }
        return (
            cls(*args, docker_client_kw=client_kw, **kwargs)
            .with_name(self.name)
            .with_kwargs(
                labels=labels(self.run_id, self.owner, self.service),
                **self.engine.extras(self.host),
            )
        )

    def _check_engine(self) -> None:
        ok, detail = self.engine.status(min(5.0, self.settings.start_timeout))
        if not ok:
            raise ServiceUnavailableError(
                f"{self.engine.name} provider: {self.engine.with_fix(detail)}"
            )

    def _sweep_labelled(self) -> None:
        """Containers of crashed runs that escaped the registry (e.g. a wiped runtime directory)."""
        from ..containers.engine import connect
        from ..containers.ownership import sweep_leftovers

        with contextlib.suppress(Exception):  # a sweep that fails must not stop this run
            client = connect(self.host, timeout=10)
            try:
                sweep_leftovers(client)
            finally:
                client.close()

    def _ensure_image(self, client: Any) -> None:
        import docker.errors

        image = self.image()
        try:
            client.images.get(image)
            return
        except docker.errors.ImageNotFound:
            pass
        try:
            client.images.pull(image)
        except docker.errors.APIError as exc:
            raise ServiceUnavailableError(
                f"{self.engine.name} provider: image {image} is not in the {self.engine.title} "
                f"at {self.host} and cannot be pulled ({exc.explanation or exc}): build it "
                f"({self.engine.images_fix}) or set ini {self.image_key} to an image that exists"
            ) from None

    def _start_on_free_port(self) -> tuple[Any, int]:
        """Start the container, publishing the fixed port, or the next free one when another
        program took it meanwhile."""
        import docker.errors

        last_error = ""
        for port in candidate_ports(self.fixed_port(), self.port_key):
            container = self.container(port)
            try:
                container.start()
            except docker.errors.APIError as exc:
                if "already allocated" in str(exc) or "address already in use" in str(exc):
                    last_error = str(exc)
                    with contextlib.suppress(Exception):
                        remove_container(self.handle, keep_dir=True)
                    continue
                raise self._failed(container, f"did not start: {exc}") from None
            return container, port
        raise ServiceStartError(
            f"{self.service} container could not publish a free port on 127.0.0.1: {last_error}"
        )

    def _wait(self, container: Any, port: int) -> ServerT:
        """Probe until the server answers; fail with its log if it dies or the time is up."""
        last, starting = "", self.starting_errors()
        while True:
            try:
                return self.probe(port)
            except starting as exc:
                last = str(exc).strip()
            wrapped = container.get_wrapped_container()
            wrapped.reload()
            if wrapped.status in ("exited", "dead"):
                raise self._failed(container, f"exited ({wrapped.status})")
            if time.monotonic() >= self.deadline:
                raise self._failed(
                    container,
                    "not ready before the start timeout (raise cleanroom_services_start_timeout); "
                    f"last error: {last}",
                )
            time.sleep(0.05)

    def _failed(self, container: Any, reason: str) -> ServiceStartError:
        logs = ""
        with contextlib.suppress(Exception):
            logs = container.get_wrapped_container().logs(tail=30).decode(errors="replace")
        return ServiceStartError(
            f"{self.service} container {self.name} ({self.engine.title} at {self.host}): "
            f"{reason}; its log:\n{logs}"
        )


def start_in_container(
    cls: type[ContainerService[Any]],
    engine: str,
    settings: ServiceSettings,
    *,
    run_id: str,
    owner: Owner,
) -> Started[Any]:
    """A kind's starter for the ``engine`` provider (see :meth:`.kinds.ServiceKind.starter`)."""
    return cls(ENGINES[engine], settings, run_id=run_id, owner=owner).start()


def remove_container(handle: Handle, keep_dir: bool = False) -> str:
    """Remove a container (and its socket directory) by name; fine if it is already gone."""
    import docker.errors

    engine = ENGINES.get(handle.get("engine", "docker"), ENGINES["docker"])
    server_dir = handle.get("server_dir")
    try:
        client = client_at(handle["docker_host"], timeout=30)
        try:
            client.containers.get(handle["name"]).remove(force=True, v=True)
            done = f"removed container {handle['name']}"
        except docker.errors.NotFound:
            done = f"container {handle['name']} already gone"
        finally:
            client.close()
    except docker.errors.DockerException as exc:
        raise ServiceStartError(
            f"cannot reach the {engine.title} at {handle.get('docker_host')} to remove "
            f"{handle['name']}: {exc}"
        ) from None
    if server_dir and not keep_dir:
        shutil.rmtree(server_dir, ignore_errors=True)
    return done


def container_logs(log: LogSource, since: float | None, max_lines: int | None) -> str:
    """The container's log lines (since a timestamp; the last ``max_lines``, ``None``: all),
    for failing tests' reports."""
    try:
        client = client_at(log.docker_host or "", timeout=10)
        try:
            container = client.containers.get(log.container_id)
            kwargs: dict[str, Any] = {"tail": "all" if max_lines is None else max_lines}
            if since is not None:
                kwargs["since"] = int(since)
            return bytes(container.logs(**kwargs)).decode(errors="replace")
        finally:
            client.close()
    except Exception as exc:
        return f"(container log unavailable: {exc})"
