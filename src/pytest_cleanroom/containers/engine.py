"""The container engine's connection: where it listens, a client that answered, its images.

:func:`connect` finds the engine through ``DOCKER_HOST`` and explains, distinctly, a missing
socket (:class:`~.errors.DockerSocketMissingError`), a socket this user may not open
(:class:`~.errors.DockerSocketPermissionError`) and a socket nobody answers on
(:class:`~.errors.DockerEngineDownError`), each naming the fix. The docker SDK is imported only
inside functions: importing this module is cheap.
"""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from .errors import (
    DockerEngineDownError,
    DockerImageMissingError,
    DockerSocketMissingError,
    DockerSocketPermissionError,
    DockerUnavailableError,
)

if TYPE_CHECKING:
    from docker import DockerClient

ENGINE_SCRIPT = "scripts/docker-engine.sh"
IMAGES_SCRIPT = "scripts/build-images.sh"
CLEANROOM_DOCKER_HOST = "unix:///run/cleanroom-docker/docker.sock"
STANDARD_DOCKER_HOST = "unix:///var/run/docker.sock"
PERMISSION_FIX = "add your user to the docker group or fix the socket's permissions"
#: Environment variable naming the Podman API socket (``unix://...``).
PODMAN_HOST_ENV = "CLEANROOM_PODMAN_HOST"
#: The socket of scripts/podman-engine.sh.
CLEANROOM_PODMAN_HOST = "unix:///run/cleanroom-podman/podman.sock"

_START_FIX = (
    "start a Docker engine (e.g. `sudo systemctl start docker`; in a pytest-cleanroom "
    f'checkout, `{ENGINE_SCRIPT} start` and `eval "$({ENGINE_SCRIPT} env)"`), or point '
    "DOCKER_HOST at a running engine"
)


def docker_host() -> str:
    """``DOCKER_HOST``, else the socket of scripts/docker-engine.sh if present, else Docker's."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    if host:
        return host
    if Path(urlparse(CLEANROOM_DOCKER_HOST).path).exists():
        return CLEANROOM_DOCKER_HOST
    return STANDARD_DOCKER_HOST


def podman_host() -> str:
    """``CLEANROOM_PODMAN_HOST``, else the socket of scripts/podman-engine.sh if present, else
    Podman's own (``/run/podman/podman.sock`` for root, ``$XDG_RUNTIME_DIR/podman/podman.sock``
    for another user)."""
    given = os.environ.get(PODMAN_HOST_ENV, "").strip()
    if given:
        return given
    own = CLEANROOM_PODMAN_HOST.removeprefix("unix://")
    if os.geteuid() == 0:
        system = "/run/podman/podman.sock"
    else:
        runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
        system = f"{runtime}/podman/podman.sock"
    return f"unix://{own if Path(own).exists() or not Path(system).exists() else system}"


def unix_socket_path(host: str) -> Path | None:
    """The socket file of a ``unix://`` address, ``None`` for other schemes."""
    parsed = urlparse(host)
    return Path(parsed.path) if parsed.scheme == "unix" else None


def engine_shares_our_mounts(host: str) -> bool:
    """Whether the engine listening at ``host`` sees this process's mounts (the same mount
    namespace), so that a tmpfs mounted here can be bound into its containers."""
    sock_path = unix_socket_path(host)
    if sock_path is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(sock_path))
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        pid = struct.unpack("3i", creds)[0]
        return os.stat(f"/proc/{pid}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino
    except OSError:
        return False


def connect(host: str | None = None, *, timeout: float = 60.0) -> DockerClient:
    """A docker SDK client on an engine that answered a ping.

    Raises :class:`DockerSocketMissingError`, :class:`DockerSocketPermissionError` or
    :class:`DockerEngineDownError` with the fix.
    """
    host = host or docker_host()
    sock = unix_socket_path(host)
    if sock is not None and not sock.exists():
        raise DockerSocketMissingError(
            f"no Docker engine: the socket {sock} (DOCKER_HOST={host}) does not exist; "
            + _START_FIX
        )
    if sock is not None and not sock.is_socket():
        raise DockerEngineDownError(
            f"no Docker engine: {sock} (DOCKER_HOST={host}) is not a socket; " + _START_FIX
        )
    if sock is not None and not os.access(sock, os.R_OK | os.W_OK):
        # The engine may well run: starting another one is not the fix.
        raise DockerSocketPermissionError(
            f"permission denied on the Docker socket {sock} (DOCKER_HOST={host}): {PERMISSION_FIX}"
        )
    try:
        import docker
        import docker.errors
    except ModuleNotFoundError as exc:  # pragma: no cover - depends on the installed extras
        from ..config_errors.extras import install_hint

        raise DockerUnavailableError(
            f"the docker SDK is not installed: {install_hint('docker')}"
        ) from exc
    try:
        client = docker.DockerClient(base_url=host, timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as exc:
        where = f"the socket {sock} exists but" if sock is not None else f"at {host}"
        raise DockerEngineDownError(
            f"the Docker engine is down: {where} nobody answers (DOCKER_HOST={host}: {exc}); "
            + _START_FIX
        ) from exc
    return client


def require_image(client: DockerClient, image: str) -> None:
    """Raise :class:`DockerImageMissingError` naming the build script when ``image`` is absent."""
    import docker.errors

    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise DockerImageMissingError(
            f"the Docker image {image!r} is not on the engine at {client.api.base_url} and images "
            f"are never pulled: build the project's images with `{IMAGES_SCRIPT}`, "
            "or name an image you built with CLEANROOM_DOCKER_IMAGE"
        ) from None
