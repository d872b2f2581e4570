"""Ownership labels on what this process creates in an engine, and the sweep of dead owners'.

:func:`owner_labels` labels what this process creates (run id, owner pid, its start time, its
PID namespace and the host); :func:`sweep_leftovers` removes labelled containers and volumes
whose owner process is gone, which is how a crashed run's leftovers are cleaned up without
testcontainers' reaper.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ..owner import Owner
from .engine import connect

if TYPE_CHECKING:
    from docker import DockerClient

LABEL_RUN = "io.cleanroom.run"
LABEL_OWNER_PID = "io.cleanroom.owner-pid"
LABEL_OWNER_START = "io.cleanroom.owner-start"
LABEL_OWNER_HOST = "io.cleanroom.owner-host"
LABEL_OWNER_PIDNS = "io.cleanroom.owner-pidns"
LABEL_ROLE = "io.cleanroom.role"

_RUN_ID: str | None = None


class Listed(NamedTuple):
    """A container as the engine lists it."""

    id: str
    name: str
    labels: dict[str, str]


def run_id() -> str:
    """This process's run id: ``CLEANROOM_RUN_ID`` if set, else a random one chosen once."""
    global _RUN_ID
    if _RUN_ID is None:
        _RUN_ID = os.environ.get("CLEANROOM_RUN_ID") or uuid.uuid4().hex[:16]
    return _RUN_ID


def owner_labels(
    run: str | None = None, *, role: str | None = None, owner: Owner | None = None
) -> dict[str, str]:
    """Labels that let :func:`sweep_leftovers` find a container once its owner has died.

    ``run`` defaults to :func:`run_id`; ``role`` (e.g. ``"backend"``, ``"postgres"``) is free text
    for humans and filters; ``owner`` defaults to this process.
    """
    owner = owner or Owner.current()
    labels = {
        LABEL_RUN: run or run_id(),
        LABEL_OWNER_PID: str(owner.pid),
        LABEL_OWNER_START: owner.token or "",
        LABEL_OWNER_HOST: owner.host,
        LABEL_OWNER_PIDNS: owner.pidns,
    }
    if role:
        labels[LABEL_ROLE] = role
    return labels


def owner_of(labels: Mapping[str, str]) -> Owner | None:
    """The :class:`Owner` recorded in ``labels``, or None when they are not ours or malformed."""
    try:
        pid = int(labels[LABEL_OWNER_PID])
    except (KeyError, ValueError):
        return None
    return Owner(
        pid,
        labels.get(LABEL_OWNER_START, ""),
        labels.get(LABEL_OWNER_HOST, ""),
        labels.get(LABEL_OWNER_PIDNS, ""),
    )


def listed_containers(client: DockerClient, filters: dict[str, Any]) -> list[Listed]:
    """The containers (running or not) matching ``filters``, from the engine's listing alone.

    docker-py's full listing then inspects each one, which fails for a container removed
    meanwhile by another sweeper or reaper (Docker answers 404; Podman, while it removes one,
    500 "no such container"): what the sweeps need is all in the listing.
    """
    return [
        Listed(item["Id"], (item.get("Names") or [item["Id"]])[0].lstrip("/"),
               item.get("Labels") or {})
        for item in client.api.containers(all=True, filters=filters)
    ]  # fmt: skip


def remove_container(client: DockerClient, container_id: str) -> bool:
    """Remove a container with its anonymous volumes; ``False`` when it is gone already or
    being removed by another process."""
    import docker.errors

    try:
        client.api.remove_container(container_id, force=True, v=True)
    except docker.errors.APIError as exc:
        if exc.status_code in (404, 409) or "no such container" in str(exc.explanation).lower():
            return False
        raise
    return True


def sweep_leftovers(client: DockerClient | None = None, *, role: str | None = None) -> list[str]:
    """Remove labelled containers (running or not) and volumes whose owner process is dead.

    Only objects carrying :data:`LABEL_OWNER_PID` are considered, and only those whose owner ran
    on this host; ``role`` narrows the sweep to one :data:`LABEL_ROLE`. Returns the names of the
    containers and volumes removed. Safe to call from several processes at once: what another
    one removed meanwhile is gone, not an error.
    """
    import docker.errors

    own_client = client is None
    client = client or connect()
    filters: dict[str, Any] = {"label": [LABEL_OWNER_PID]}
    if role:
        filters["label"].append(f"{LABEL_ROLE}={role}")
    removed: list[str] = []
    try:
        for container in listed_containers(client, filters):
            owner = owner_of(container.labels)
            if (
                owner is not None
                and not owner.is_alive()
                and remove_container(client, container.id)
            ):
                removed.append(container.name)
        for volume in client.volumes.list(filters=filters):
            owner = owner_of(volume.attrs.get("Labels") or {})
            if owner is None or owner.is_alive():
                continue
            try:
                volume.remove(force=True)
                removed.append(volume.name)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # still in use by a container being removed
                    raise
    finally:
        if own_client:
            client.close()
    return removed
