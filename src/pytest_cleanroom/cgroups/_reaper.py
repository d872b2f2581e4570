"""A watchdog that outlives the engine process and kills what its sandboxes left behind.

bubblewrap's ``--die-with-parent`` and setpriv's ``--pdeathsig`` tie a sandbox to the engine,
but the kernel only signals a process that asked before its parent died: a sandbox still being
set up when the engine is killed outright (SIGKILL, the OOM killer) can miss it and live on.
With cgroups every sandboxed process is in one of the engine's groups, so a small process that
holds the read end of a pipe from the engine kills everything in them when the pipe closes:
the moment the engine is gone, however it went. Without cgroups there is no such backstop.

    python -m pytest_cleanroom.cgroups._reaper OWNER CONTROLLER=DIR...
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from ..watchdog import start_once, wait_for_owner


def ensure_started(owner: str, parents: Mapping[str, Path]) -> None:
    """Start this process's reaper, once; ``owner`` is the prefix of its groups' names."""
    start_once(__name__, [owner, *(f"{c}={path}" for c, path in parents.items())])


def reap(owner: str, parents: Mapping[str, Path]) -> None:
    """Kill the tasks of every group of ``owner`` and remove the groups."""
    from . import RunCgroup

    names: set[str] = set()
    for parent in parents.values():
        try:
            names.update(
                e.name for e in os.scandir(parent) if e.is_dir() and e.name.startswith(owner)
            )
        except OSError:
            continue
    for name in sorted(names):
        RunCgroup({c: p / name for c, p in parents.items()}).remove()


def main(argv: list[str]) -> int:
    owner, specs = argv[0], argv[1:]
    parents = {c: Path(p) for c, _, p in (spec.partition("=") for spec in specs)}
    wait_for_owner()
    reap(owner, parents)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
