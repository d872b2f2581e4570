"""The registry of service kinds (``postgres``, ``redis``, ``mysql``, and third parties').

A kind says where its servers can come from: which binaries the process provider needs, which
URL setting names an external server, which function starts the run's server for each
provider, and which :class:`~.container_provider.ContainerService` runs it in a container on
every engine of :mod:`.engines` (the ``docker`` and ``podman`` providers). Choosing a provider
(:mod:`.providers`), starting servers (:mod:`.hub`) and the report header read this registry,
not a list of names. Third parties add a kind with an entry point in the group
``pytest_cleanroom.services`` naming a :class:`ServiceKind` subclass.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any, ClassVar

from . import binaries
from .engines import ENGINES
from .errors import ServiceConfigError, ServiceUnavailableError
from .settings import ENV_MYSQL_URL, ENV_POSTGRES_URL, ENV_REDIS_URL, ServiceSettings

ENTRY_POINT_GROUP = "pytest_cleanroom.services"


class ServiceKind:
    """One kind of service. Subclasses set the class attributes and :meth:`binary_detail`."""

    #: The fixture and report name, e.g. ``postgres``.
    name: ClassVar[str]
    #: ``provider -> "module:function"`` starting (or, ``external``, connecting to) the run's
    #: server (module relative to this package when it starts with a dot);
    #: ``function(settings, run_id=, owner=)`` returns a :class:`~.registry.Started`. Providers
    #: missing here (and not served by :attr:`container`) cannot serve this kind.
    starters: ClassVar[dict[str, str]]
    #: ``"module:Class"`` of the kind's :class:`~.container_provider.ContainerService`
    #: subclass: its server in a container on every engine (``None``: no container provider).
    container: ClassVar[str | None] = None
    #: How to get the binaries, said when the process provider cannot serve.
    install_hint: ClassVar[str]
    #: The environment variable naming an external server (``None``: no external provider).
    url_env: ClassVar[str | None] = None
    #: One server per xdist worker (``True``) or one per run shared by every worker.
    per_worker: ClassVar[bool] = False

    def binary_detail(self, settings: ServiceSettings) -> str | None:
        """What the process provider would start (``None``: no binaries here)."""
        raise NotImplementedError

    def url(self, settings: ServiceSettings) -> tuple[str | None, str]:
        """The external server's URL and where it was set (``None``: none configured)."""
        return None, ""

    def missing_binaries(self, settings: ServiceSettings) -> str:
        """Why the process provider cannot serve and how to fix it."""
        return self.install_hint

    def serves(self, provider: str) -> bool:
        """Whether ``provider`` can start (or connect to) this kind's server."""
        return provider in self.starters or (self.container is not None and provider in ENGINES)

    def starter(self, provider: str) -> Callable[..., Any]:
        """The function that starts this kind's server with ``provider``."""
        if provider not in self.starters and self.container and provider in ENGINES:
            from .container_provider import start_in_container

            return functools.partial(start_in_container, _load(self.container), provider)
        return _load(self.starters[provider])  # type: ignore[no-any-return]


def _load(reference: str) -> Any:
    """``module:name`` (module relative to this package when it starts with a dot)."""
    module, _, name = reference.partition(":")
    package = __package__ if module.startswith(".") else None
    return getattr(importlib.import_module(module, package), name)


class PostgresKind(ServiceKind):
    name = "postgres"
    starters = {"process": ".pg_process:start_postgres"}
    container = ".pg_container:PostgresContainer"
    install_hint = binaries.POSTGRES_INSTALL_HINT
    url_env = ENV_POSTGRES_URL

    def binary_detail(self, settings: ServiceSettings) -> str | None:
        pg = binaries.find_postgres(settings.postgres_bin_dir, settings.postgres_version)
        return f"postgres {pg.version} in {pg.bin_dir}" if pg else None

    def url(self, settings: ServiceSettings) -> tuple[str | None, str]:
        return settings.postgres_url, settings.postgres_url_source

    def missing_binaries(self, settings: ServiceSettings) -> str:
        if settings.postgres_version is None:
            return self.install_hint
        try:
            binaries.require_postgres(settings.postgres_bin_dir, settings.postgres_version)
        except ServiceUnavailableError as exc:
            return str(exc)
        return self.install_hint


class RedisKind(ServiceKind):
    name = "redis"
    starters = {"process": ".redis_process:start_redis"}
    container = ".redis_container:RedisContainer"
    install_hint = binaries.REDIS_INSTALL_HINT
    url_env = ENV_REDIS_URL
    per_worker = True  # server-wide state (pub/sub, CONFIG, functions) stays in one worker

    def binary_detail(self, settings: ServiceSettings) -> str | None:
        rd = binaries.find_redis(settings.redis_server)
        return f"redis-server {rd.version} at {rd.path}" if rd else None

    def url(self, settings: ServiceSettings) -> tuple[str | None, str]:
        return settings.redis_url, settings.redis_url_source


class MysqlKind(ServiceKind):
    name = "mysql"
    starters = {
        "process": ".mysql_process:start_mysql",
        "external": ".mysql_external:connect_mysql",
    }
    container = ".mysql_container:MysqlContainer"
    install_hint = binaries.MYSQL_INSTALL_HINT
    url_env = ENV_MYSQL_URL

    def url(self, settings: ServiceSettings) -> tuple[str | None, str]:
        return settings.mysql_url, settings.mysql_url_source

    def binary_detail(self, settings: ServiceSettings) -> str | None:
        found = binaries.find_mysql(settings.mysql_bin_dir)
        return f"mariadbd {found.version} at {found.server}" if found else None


_KINDS: dict[str, ServiceKind] = {k.name: k for k in (PostgresKind(), RedisKind(), MysqlKind())}
_loaded_entry_points = False


def register(kind: ServiceKind) -> None:
    """Add ``kind`` (replacing one of the same name)."""
    _KINDS[kind.name] = kind


def kinds() -> dict[str, ServiceKind]:
    """Every registered kind, the entry points' included (loaded on first call)."""
    global _loaded_entry_points
    if not _loaded_entry_points:
        _loaded_entry_points = True
        from importlib.metadata import entry_points

        for entry in entry_points(group=ENTRY_POINT_GROUP):
            cls = entry.load()
            if not (isinstance(cls, type) and issubclass(cls, ServiceKind)):
                raise ServiceConfigError(
                    f"entry point {entry.name} = {entry.value} (group {ENTRY_POINT_GROUP}) is not "
                    "a ServiceKind subclass"
                )
            register(cls())
    return dict(_KINDS)


def kind(name: str) -> ServiceKind:
    """The kind called ``name``; one error listing the registered kinds otherwise."""
    known = kinds()
    if name not in known:
        raise ServiceConfigError(
            f"unknown service kind {name!r}: registered kinds are {', '.join(sorted(known))}"
        )
    return known[name]
