"""Choosing where each service comes from (``auto`` logic) and saying why.

Cheap by design (the report header calls it): looking for binaries runs ``--version`` once, and a
container engine is asked ``GET /_ping`` over its socket with a short timeout, without the docker
SDK (see :mod:`.engines`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import kinds
from .engines import DOCKER, ENGINES, PODMAN, ContainerEngine
from .errors import ServiceUnavailableError
from .kinds import ServiceKind
from .settings import ServiceSettings

#: Said in the report header whenever a container provider serves (see
#: container_provider.reaper_off).
REAPER_NOTE = "testcontainers' reaper off, the plugin removes its containers"


@dataclass(frozen=True)
class Choice:
    """The provider chosen for one service (``None``: nothing can serve) and the reason."""

    service: str
    provider: str | None
    reason: str

    def to_json(self) -> list[str | None]:
        return [self.service, self.provider, self.reason]

    def require(self) -> str:
        if self.provider is None:
            raise ServiceUnavailableError(self.reason)
        return self.provider


def docker_host() -> str:
    """``DOCKER_HOST``, else the project engine's socket if present, else Docker's default."""
    return DOCKER.host()


def docker_status(timeout: float = 3.0) -> tuple[bool, str]:
    """Whether a Docker engine answers at ``DOCKER_HOST``, and a sentence saying what was found."""
    return DOCKER.status(timeout)


def with_docker_fix(detail: str) -> str:
    """``detail`` of :func:`docker_status`, with the fix unless it names one already."""
    return DOCKER.with_fix(detail)


def _fixes(kind: ServiceKind[Any, Any]) -> str:
    fixes = []
    if kind.url_env:
        fixes.append(
            f"point at a running server: set {kind.url_env} (or --cleanroom-{kind.name}-url)"
        )
    fixes.append(kind.install_hint)
    if kind.serves("docker"):
        fixes.append(
            "start a Docker engine (dockerd) and set DOCKER_HOST if its socket is not "
            "/var/run/docker.sock"
        )
    if kind.serves("podman"):
        fixes.append(PODMAN.start_fix)
    if len(fixes) == 1:
        return fixes[0]
    return "fix one of: " + "; ".join(f"({n}) {fix}" for n, fix in enumerate(fixes, 1))


#: ``check(engine)``: whether ``engine`` answers, and what was found.
EngineCheck = Callable[[ContainerEngine], tuple[bool, str]]


def choose(
    service: str, settings: ServiceSettings, engine_check: EngineCheck | None = None
) -> Choice:
    """Where ``service`` comes from under ``settings``, with the reason for the report header.

    ``engine_check`` answers whether an engine is up (default: ask it now); pass one that
    remembers its answers to ask a hung engine once for several services.
    """
    kind = kinds.kind(service)
    engine_check = engine_check or (lambda e: e.status(min(5.0, settings.start_timeout)))
    url, url_source = kind.url(settings)
    provider = settings.provider
    how = f"{settings.provider_source}={provider}"
    if provider == "external":
        if kind.url_env is None:
            return Choice(service, None, f"{how} but {service} has no external provider")
        if not url:
            return Choice(
                service,
                None,
                f"{how} but no {service} URL is configured: set {kind.url_env} or "
                f"--cleanroom-{service}-url",
            )
        return Choice(service, "external", f"{how}, URL from {url_source}")
    if provider == "process":
        detail = kind.binary_detail(settings)
        if detail is None:
            return Choice(
                service,
                None,
                f"{how} but no {service} server binaries: {kind.missing_binaries(settings)}",
            )
        return Choice(service, "process", f"{how}: {detail}")
    if provider in ENGINES:
        engine = ENGINES[provider]
        if not kind.serves(provider):
            return Choice(
                service,
                None,
                f"{how} but {service} has no {provider} provider: {kind.install_hint}",
            )
        ok, detail = engine_check(engine)
        if not ok:
            return Choice(service, None, f"{how} but {engine.with_fix(detail)}")
        return Choice(service, provider, f"{how}: {detail}; {REAPER_NOTE}")
    return _auto(kind, settings, url, url_source, engine_check)


def _auto(
    kind: ServiceKind[Any, Any],
    settings: ServiceSettings,
    url: str | None,
    source: str,
    engine_check: EngineCheck,
) -> Choice:
    """``auto``: external when a URL is set, else process when binaries exist, else the first
    container engine that answers (Docker, then Podman)."""
    service = kind.name
    if url:
        return Choice(service, "external", f"auto: URL from {source}")
    detail = kind.binary_detail(settings)
    if detail is not None:
        return Choice(service, "process", f"auto: {detail}")
    engines = [engine for name, engine in ENGINES.items() if kind.serves(name)]
    if not engines:
        return Choice(service, None, f"no {service} server binaries; {_fixes(kind)}")
    found = []
    for engine in engines:
        ok, engine_detail = engine_check(engine)
        if ok:
            why = f"auto: no {service} binaries; {engine_detail}; {REAPER_NOTE}"
            return Choice(service, engine.name, why)
        found.append(engine_detail)
    return Choice(
        service,
        None,
        f"no {service} provider can serve (no URL configured, no {service} server binaries, "
        f"{', '.join(found)}); {_fixes(kind)}",
    )


def choose_all(settings: ServiceSettings) -> dict[str, Choice]:
    """The choice for every registered kind, asking each engine at most once (a hung engine
    costs one timeout, not one per service)."""
    answers: dict[str, tuple[bool, str]] = {}

    def engine_check(engine: ContainerEngine) -> tuple[bool, str]:
        if engine.name not in answers:
            answers[engine.name] = engine.status(min(5.0, settings.start_timeout))
        return answers[engine.name]

    return {name: choose(name, settings, engine_check) for name in kinds.kinds()}
