"""The errors of the container engine's connection: each names the fix."""

from __future__ import annotations

from ..errors import BackendUnavailableError


class DockerUnavailableError(BackendUnavailableError):
    """No Docker engine can be used; the message names the fix."""


class DockerSocketMissingError(DockerUnavailableError):
    """``DOCKER_HOST`` names a unix socket that does not exist: no engine was ever started."""


class DockerEngineDownError(DockerUnavailableError):
    """The socket exists (or the address is given) but no engine answers on it."""


class DockerSocketPermissionError(DockerUnavailableError):
    """The socket exists but this user may not open it: the fix is its permissions."""


class DockerImageMissingError(DockerUnavailableError):
    """The engine answers but the image is not there (and is never pulled)."""
