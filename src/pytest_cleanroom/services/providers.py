"""Choosing where each service comes from (``auto`` logic) and saying why.

Cheap by design (the report header calls it): looking for binaries runs ``--version`` once, and a
Docker engine is asked ``GET /_ping`` over its socket with a short timeout, without the docker SDK.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import kinds
from .errors import ServiceUnavailableError
from .kinds import ServiceKind
from .settings import ServiceSettings

#: Said in the report header whenever the docker provider serves (see docker_provider.reaper_off).
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
    from ..containers.engine import docker_host as project_docker_host

    return project_docker_host()


def docker_status(timeout: float = 3.0) -> tuple[bool, str]:
    """Whether a Docker engine answers at ``DOCKER_HOST``, and a sentence saying what was found."""
    host = docker_host()
    parts = urlsplit(host)
    try:
        if parts.scheme == "unix":
            path = parts.path
            if not os.path.exists(path):
                return False, f"no Docker socket at {path}"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = path
        elif parts.scheme in ("tcp", "http"):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = (parts.hostname or "127.0.0.1", parts.port or 2375)
        else:
            return True, f"Docker engine at {host} (not checked: {parts.scheme} transport)"
        with sock:
            sock.settimeout(timeout)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(256)
    except TimeoutError:
        return False, f"the Docker engine at {host} did not answer within {timeout:g}s"
    except PermissionError:
        from ..containers.engine import PERMISSION_FIX

        return False, f"permission denied on the Docker socket {host}: {PERMISSION_FIX}"
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return False, f"Docker socket {host} present but the engine does not answer ({reason})"
    if b" 200 " not in reply.split(b"\r\n", 1)[0]:
        return False, f"the Docker engine at {host} answered /_ping with {reply[:40]!r}"
    return True, f"Docker engine answers at {host}"


def with_docker_fix(detail: str) -> str:
    """``detail`` of :func:`docker_status`, with the fix unless it names one already (a socket
    the user may not open needs permissions, not another engine)."""
    if "permission denied" in detail:
        return detail
    return f"{detail}: start dockerd, or set DOCKER_HOST to its socket"


def _fixes(kind: ServiceKind) -> str:
    fixes = []
    if kind.url_env:
        fixes.append(
            f"point at a running server: set {kind.url_env} (or --cleanroom-{kind.name}-url)"
        )
    fixes.append(kind.install_hint)
    if "docker" in kind.starters:
        fixes.append(
            "start a Docker engine (dockerd) and set DOCKER_HOST if its socket is not "
            "/var/run/docker.sock"
        )
    if len(fixes) == 1:
        return fixes[0]
    return "fix one of: " + "; ".join(f"({n}) {fix}" for n, fix in enumerate(fixes, 1))


DockerCheck = Callable[[], tuple[bool, str]]


def choose(
    service: str, settings: ServiceSettings, docker_check: DockerCheck | None = None
) -> Choice:
    """Where ``service`` comes from under ``settings``, with the reason for the report header.

    ``docker_check`` answers whether the engine is up (default: ask it now); pass one that
    remembers its answer to ask a hung engine once for several services.
    """
    kind = kinds.kind(service)
    docker_check = docker_check or (lambda: docker_status(min(5.0, settings.start_timeout)))
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
    if provider == "docker":
        if "docker" not in kind.starters:
            return Choice(
                service, None, f"{how} but {service} has no docker provider: {kind.install_hint}"
            )
        ok, detail = docker_check()
        if not ok:
            return Choice(
                service,
                None,
                f"{how} but {with_docker_fix(detail)}",
            )
        return Choice(service, "docker", f"{how}: {detail}; {REAPER_NOTE}")
    return _auto(kind, settings, url, url_source, docker_check)


def _auto(
    kind: ServiceKind,
    settings: ServiceSettings,
    url: str | None,
    source: str,
    docker_check: DockerCheck,
) -> Choice:
    """``auto``: external when a URL is set, else process when binaries exist, else docker."""
    service = kind.name
    if url:
        return Choice(service, "external", f"auto: URL from {source}")
    detail = kind.binary_detail(settings)
    if detail is not None:
        return Choice(service, "process", f"auto: {detail}")
    if "docker" not in kind.starters:
        return Choice(service, None, f"no {service} server binaries; {_fixes(kind)}")
    ok, docker_detail = docker_check()
    if ok:
        return Choice(
            service, "docker", f"auto: no {service} binaries; {docker_detail}; {REAPER_NOTE}"
        )
    return Choice(
        service,
        None,
        f"no {service} provider can serve (no URL configured, no {service} server binaries, "
        f"{docker_detail}); {_fixes(kind)}",
    )


def choose_all(settings: ServiceSettings) -> dict[str, Choice]:
    """The choice for every registered kind, asking a Docker engine at most once (a hung engine
    costs one timeout, not one per service)."""
    answer: list[tuple[bool, str]] = []

    def docker_check() -> tuple[bool, str]:
        if not answer:
            answer.append(docker_status(min(5.0, settings.start_timeout)))
        return answer[0]

    return {name: choose(name, settings, docker_check) for name in kinds.kinds()}
