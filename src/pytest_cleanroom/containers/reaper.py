"""A watchdog that outlives the engine and removes the containers it was running when it died.

The docker backend removes each command's container itself, and the next process sweeps what a
dead one left; but a container of an engine killed outright (SIGKILL, the OOM killer) would run
on until then. This helper (one per engine process and Docker host, see
:mod:`pytest_cleanroom.watchdog`) removes that engine's backend containers the moment the
engine is gone.

    python -m pytest_cleanroom.containers.reaper HOST OWNER_PID OWNER_START
"""

from __future__ import annotations

import contextlib
import sys

from ..owner import Owner
from ..watchdog import start_once, wait_for_owner
from .engine import connect
from .ownership import (
    LABEL_OWNER_PID,
    LABEL_OWNER_START,
    LABEL_ROLE,
    listed_containers,
    remove_container,
)


def ensure_started(host: str) -> None:
    """Start this process's docker reaper for ``host``, once."""
    owner = Owner.current()
    start_once(__name__, [host, str(owner.pid), owner.token or ""])


def reap(host: str, pid: str, start: str) -> None:
    """Remove every backend container labelled as made by process ``pid`` started at ``start``."""
    client = connect(host)
    try:
        labels = [f"{LABEL_OWNER_PID}={pid}", f"{LABEL_OWNER_START}={start}"]
        filters = {"label": [*labels, f"{LABEL_ROLE}=backend"]}
        for container in listed_containers(client, filters):
            with contextlib.suppress(Exception):  # the others still go; the sweep remains
                remove_container(client, container.id)
    finally:
        client.close()


def main(argv: list[str]) -> int:
    host, pid, start = argv
    wait_for_owner()
    with contextlib.suppress(Exception):  # the engine's sweep remains for what this misses
        reap(host, pid, start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
