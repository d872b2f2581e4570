"""The container engines the services' container provider runs on: Docker and Podman.

Each engine is one provider name (``docker``, ``podman``), found through its own setting
(``DOCKER_HOST``, ``CLEANROOM_PODMAN_HOST``), and asked ``GET /_ping`` over its socket with a
short timeout, without the docker SDK (the report header asks): what it answers names the fix
for that engine. Only the standard library is imported here.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..containers.engine import PERMISSION_FIX, docker_host, podman_host


@dataclass(frozen=True)
class ContainerEngine:
    """An engine speaking Docker's API: where it listens, how it is named, how to fix it."""

    #: The provider's name (``--cleanroom-services=<name>``).
    name: str
    #: ``Docker`` / ``Podman``, as in "the Docker engine".
    noun: str
    #: What answers on the socket: ``engine`` (dockerd) or ``service`` (podman system service).
    server: str
    #: The engine's address now (its variable, else the usual sockets).
    host: Callable[[], str]
    #: How to start it, said after "the engine does not answer".
    start_fix: str
    #: How to get a socket one may open, said after "permission denied".
    permission_fix: str
    #: The program whose absence means the engine is not installed (``None``: not checked).
    program: str | None = None
    #: How to install it, said when :attr:`program` is missing.
    install_fix: str = ""
    #: How to build the project's images on it, said when an image is missing.
    images_fix: str = "scripts/build-images.sh in pytest-cleanroom's repository"
    #: ``extras(host)``: what every service container gets on this engine beyond Docker's
    #: defaults (docker SDK ``containers.create`` keyword arguments).
    extras: Callable[[str], dict[str, Any]] = lambda host: {}

    def status(self, timeout: float = 3.0) -> tuple[bool, str]:
        """Whether the engine answers at :attr:`host`, and a sentence saying what was found."""
        host = self.host()
        parts = urlsplit(host)
        try:
            if parts.scheme == "unix":
                if not os.path.exists(parts.path):
                    return False, self._no_socket(parts.path)
                reply = _ping(socket.AF_UNIX, parts.path, timeout)
            elif parts.scheme in ("tcp", "http"):
                address = (parts.hostname or "127.0.0.1", parts.port or 2375)
                reply = _ping(socket.AF_INET, address, timeout)
            else:
                return True, f"{self.title} at {host} (not checked: {parts.scheme} transport)"
        except TimeoutError:
            return False, f"the {self.title} at {host} did not answer within {timeout:g}s"
        except PermissionError:
            return (
                False,
                f"permission denied on the {self.noun} socket {host}: {self.permission_fix}",
            )
        except OSError as exc:
            reason = exc.strerror or str(exc)
            down = f"present but the {self.server} does not answer"
            return False, f"{self.noun} socket {host} {down} ({reason})"
        if b" 200 " not in reply.split(b"\r\n", 1)[0]:
            return False, f"the {self.title} at {host} answered /_ping with {reply[:40]!r}"
        return True, f"{self.title} answers at {host}"

    @property
    def title(self) -> str:
        """``Docker engine`` / ``Podman service``."""
        return f"{self.noun} {self.server}"

    def with_fix(self, detail: str) -> str:
        """``detail`` of :meth:`status`, with the fix unless it names one already (a socket the
        user may not open needs permissions, a missing program its installation)."""
        if "permission denied" in detail or "not installed" in detail:
            return detail
        return f"{detail}: {self.start_fix}"

    def _no_socket(self, path: str) -> str:
        if self.program and shutil.which(self.program) is None:
            return (
                f"{self.noun} is not installed (no {self.program} on PATH, no socket at "
                f"{path}): {self.install_fix}"
            )
        return f"no {self.noun} socket at {path}"

    def client(self, timeout: float = 30.0) -> Any:
        """A docker SDK client on this engine."""
        return client_at(self.host(), timeout)


def client_at(host: str, timeout: float = 30.0) -> Any:
    """A docker SDK client on the engine at ``host`` (Docker's API: either engine)."""
    import importlib

    # Looked up dynamically: under mypy, the repository's docker/ directory shadows the SDK.
    client_class: Any = getattr(importlib.import_module("docker"), "DockerClient")  # noqa: B009
    return client_class(base_url=host, timeout=int(max(5, timeout)))


def _podman_limits(host: str) -> dict[str, Any]:
    """The Podman service's own open-file and process limits: Podman gives containers 1048576,
    which its runtime cannot set where the service's hard limits are lower (the container would
    not start); Docker's containers inherit the daemon's."""
    from docker.types import Ulimit

    from ..backends.podman import service_limits

    limits = service_limits(host)
    return {"ulimits": [Ulimit(name=n, soft=v, hard=v) for n, v in limits.items()]}


def _ping(family: socket.AddressFamily, address: str | tuple[str, int], timeout: float) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        return sock.recv(256)


DOCKER = ContainerEngine(
    name="docker",
    noun="Docker",
    server="engine",
    host=docker_host,
    start_fix="start dockerd, or set DOCKER_HOST to its socket",
    permission_fix=PERMISSION_FIX,
)

PODMAN = ContainerEngine(
    name="podman",
    noun="Podman",
    server="service",
    host=podman_host,
    start_fix=(
        "start Podman's API service (`systemctl start podman.socket` as root, `systemctl --user "
        "start podman.socket` as another user; in a pytest-cleanroom checkout "
        "`scripts/podman-engine.sh start`), or set CLEANROOM_PODMAN_HOST to its socket"
    ),
    permission_fix=(
        "use a Podman service of your own (`systemctl --user start podman.socket`, then "
        "CLEANROOM_PODMAN_HOST=unix://$XDG_RUNTIME_DIR/podman/podman.sock) or fix the socket's "
        "permissions"
    ),
    program="podman",
    images_fix="scripts/podman-engine.sh images in pytest-cleanroom's repository",
    extras=_podman_limits,
    install_fix=(
        "install it (Debian/Ubuntu: apt-get install podman; Fedora: dnf install podman), then "
        "start its API service (`systemctl start podman.socket`; in a pytest-cleanroom checkout "
        "`scripts/podman-engine.sh start`)"
    ),
)

#: Every engine, in the order ``auto`` tries them.
ENGINES: dict[str, ContainerEngine] = {e.name: e for e in (DOCKER, PODMAN)}
