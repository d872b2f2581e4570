"""The contract of a service kind: start, stop, isolate per test, reset, expose, health, logs.

A kind (``postgres``, ``redis``, ``mysql``, or a third party's) is one :class:`ServiceKind`
subclass; its providers (``process``, ``docker``/``podman`` through one
:class:`~.container_provider.ContainerService`, ``external``) are its start functions. The
plugin builds every kind's fixtures from this contract alone (:mod:`.plugin`): the server,
shared by the run (or by one xdist worker), an :class:`Isolation` per worker that hands each
test a handle of its own and resets after it, what a sandboxed command gets of that handle
(:class:`Exposure`), whether the server still answers, and its log lines since the test began.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from ..owner import Owner
from .engines import ENGINES
from .registry import Handle, Started

if TYPE_CHECKING:
    from .hub import ServiceHub
    from .model import LogSource
    from .settings import ServiceSettings

ServerT = TypeVar("ServerT")
HandleT = TypeVar("HandleT")

STATE_DIR_NAME = "cleanroom-services"


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
    def worker_prefix(self) -> str:
        """What this worker's per-test objects are called before their number."""
        return f"{self.db_prefix}{self.worker_id}_"

    @property
    def template_name(self) -> str:
        return f"{self.db_prefix}template"


@dataclass(frozen=True)
class Exposure:
    """What a sandboxed command gets of a test's handle: the directory of the server's unix
    socket, bound at the same path (``None``: nothing to bind), and client variables.

    ``database_url`` becomes ``DATABASE_URL`` for a command that reaches exactly one service
    giving one; the kind's own variables are always set.
    """

    socket_dir: Path | None
    env: Mapping[str, str] = field(default_factory=dict)
    database_url: str | None = None


class Isolation(ABC, Generic[HandleT]):
    """One worker's per-test isolation on one server (session scope): a handle of its own for
    each test, and the server put back after it."""

    @abstractmethod
    def isolate(self) -> HandleT:
        """A handle (database, index, namespace) that belongs to the calling test alone."""

    @abstractmethod
    def reset(self, handle: HandleT) -> None:
        """After the test: close what was handed to it, remove its data, undo what it changed
        on the server."""

    def close(self) -> None:
        """At the end of the session: release what :meth:`isolate` holds."""


class ServiceKind(ABC, Generic[ServerT, HandleT]):
    """One kind of service. Subclasses set the class attributes and write the abstract
    methods; the rest has defaults that fit a server started by the plugin."""

    #: The fixture's and the report's name, e.g. ``postgres`` (``<name>_server`` is the
    #: session fixture of the server).
    name: ClassVar[str]
    #: ``provider -> "module:function"`` starting (or, ``external``, checking) the run's server
    #: (module relative to this package when it starts with a dot);
    #: ``function(settings, *, run_id, owner)`` returns a :class:`~.registry.Started`.
    starters: ClassVar[dict[str, str]] = {}
    #: ``"module:Class"`` of the kind's :class:`~.container_provider.ContainerService`: its
    #: server in a container on every engine (``None``: no container provider).
    container: ClassVar[str | None] = None
    #: How to get the binaries, said when the process provider cannot serve.
    install_hint: ClassVar[str] = ""
    #: The environment variable naming an external server (``None``: no external provider).
    url_env: ClassVar[str | None] = None
    #: One server per xdist worker (``True``) or one per run shared by every worker.
    per_worker: ClassVar[bool] = False
    #: The client package imported before a server is started, so that a missing one is said
    #: at once (``None``: none needed).
    client_module: ClassVar[str | None] = None
    #: Docstrings of the generated fixtures (``pytest --fixtures``).
    fixture_doc: ClassVar[str] = ""
    server_doc: ClassVar[str] = ""

    # -- where the server comes from ------------------------------------------------------------

    @abstractmethod
    def binary_detail(self, settings: ServiceSettings) -> str | None:
        """What the process provider would start (``None``: no binaries here)."""

    def url(self, settings: ServiceSettings) -> tuple[str | None, str]:
        """The external server's URL and where it was set (``None``: none configured)."""
        return None, ""

    def missing_binaries(self, settings: ServiceSettings) -> str:
        """Why the process provider cannot serve and how to fix it."""
        return self.install_hint

    def serves(self, provider: str) -> bool:
        """Whether ``provider`` can start (or connect to) this kind's server."""
        return provider in self.starters or (self.container is not None and provider in ENGINES)

    def starter(self, provider: str) -> Callable[..., Started[ServerT]]:
        """The function that starts this kind's server with ``provider``."""
        if provider not in self.starters and self.container and provider in ENGINES:
            from .container_provider import start_in_container

            return functools.partial(start_in_container, load(self.container), provider)
        return load(self.starters[provider])  # type: ignore[no-any-return]

    # -- start, stop ----------------------------------------------------------------------------

    def state_key(self, settings: ServiceSettings, run: RunContext, provider: str | None) -> str:
        """Under which name the run shares this server: one per run, or per worker for a
        ``per_worker`` kind (an external server is always the run's)."""
        if self.per_worker and provider != "external":
            return f"{self.name}-{run.worker_id}"
        return self.name

    def start(self, provider: str, settings: ServiceSettings, run: RunContext) -> Started[ServerT]:
        """Start (``external``: check) the run's server with ``provider``."""
        return self.starter(provider)(settings, run_id=run.run_id, owner=run.owner)

    def stop(self, handle: Handle) -> str:
        """Stop the server recorded as ``handle`` and remove what it left (controller teardown
        and the next run's crash sweep); returns what was done."""
        from .cleanup import stop_started

        return stop_started(handle)

    @abstractmethod
    def server_from_json(self, data: dict[str, Any]) -> ServerT:
        """The server object from its JSON form (``Started.server.to_json()``)."""

    # -- per test -------------------------------------------------------------------------------

    @abstractmethod
    def isolation(self, server: ServerT, hub: ServiceHub) -> Isolation[HandleT]:
        """This worker's per-test isolation on ``server``."""

    @abstractmethod
    def expose(self, handle: HandleT) -> Exposure:
        """What a sandboxed command of the test gets (every level that allows the service)."""

    def health(self, server: ServerT) -> str | None:
        """Why the server does not answer (``None``: it does, or the kind cannot tell)."""
        return None

    def log(self, handle: HandleT) -> LogSource:
        """Where the handle's server writes its log (default: nowhere)."""
        from .model import LogSource

        return LogSource()

    def own_log_lines(self, handle: HandleT, text: str) -> str:
        """The lines of the server's log ``text`` that concern this test (default: all)."""
        return text

    def log_mark(self, handle: HandleT) -> float:
        """A position in the server's log to read from when the test is over."""
        return self.log(handle).mark()

    def logs(self, handle: HandleT, since: float) -> str:
        """The server's log lines about this test written since ``since``."""
        return self.log(handle).read(
            since=since, keep=lambda text: self.own_log_lines(handle, text)
        )


def load(reference: str) -> Any:
    """``module:name`` (module relative to this package when it starts with a dot)."""
    module, _, name = reference.partition(":")
    package = __package__ if module.startswith(".") else None
    return getattr(importlib.import_module(module, package), name)


def keyed(name: str, identity: object, separator: str = "-") -> str:
    """``name``, followed by a digest of ``identity`` when there is one."""
    if not identity:
        return name
    return f"{name}{separator}{hashlib.sha256(repr(identity).encode()).hexdigest()[:8]}"
