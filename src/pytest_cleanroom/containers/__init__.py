"""Container engines as the ``docker`` and ``podman`` backends and the container services use them.

``engine`` connects (with errors naming the fix), ``ownership`` labels what a process creates
and sweeps what dead owners left, ``testcontainers_setup`` points testcontainers at 127.0.0.1,
``cgroups`` measures containers through their cgroups, ``kernel_log`` reads refused forks from
the kernel's log, and ``reaper`` removes a killed engine process's containers. The names below
are the public ones (see docs/docker.md); the docker SDK is imported only when used.
"""

from __future__ import annotations

from .engine import connect, docker_host, require_image
from .errors import (
    DockerEngineDownError,
    DockerImageMissingError,
    DockerSocketMissingError,
    DockerSocketPermissionError,
    DockerUnavailableError,
)
from .ownership import (
    LABEL_OWNER_HOST,
    LABEL_OWNER_PID,
    LABEL_OWNER_PIDNS,
    LABEL_OWNER_START,
    LABEL_ROLE,
    LABEL_RUN,
    owner_labels,
    owner_of,
    run_id,
    sweep_leftovers,
)
from .testcontainers_setup import configure_testcontainers

__all__ = [
    "LABEL_OWNER_HOST",
    "LABEL_OWNER_PID",
    "LABEL_OWNER_PIDNS",
    "LABEL_OWNER_START",
    "LABEL_ROLE",
    "LABEL_RUN",
    "DockerEngineDownError",
    "DockerImageMissingError",
    "DockerSocketMissingError",
    "DockerSocketPermissionError",
    "DockerUnavailableError",
    "configure_testcontainers",
    "connect",
    "docker_host",
    "owner_labels",
    "owner_of",
    "require_image",
    "run_id",
    "sweep_leftovers",
]
