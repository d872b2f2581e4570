"""A watchdog that outlives the engine process and kills what its sandboxes left behind.

bubblewrap's ``--die-with-parent`` and setpriv's ``--pdeathsig`` tie a sandbox to the engine,
but the kernel only signals a process that asked before its parent died: a sandbox still being
set up when the engine is killed outright (SIGKILL, the OOM killer) can miss it and live on.
With cgroups every sandboxed process is in one of the engine's groups, so a small process that
holds the read end of a pipe from the engine kills everything in them when the pipe closes:
the moment the engine is gone, however it went. Without cgroups there is no such backstop.

    python -m pytest_cleanroom.cgroup_reaper OWNER CONTROLLER=DIR...
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

_lock = threading.Lock()
_started_for: int | None = None  # the pid whose reaper runs (a forked child needs its own)
_pipe_write_end: int | None = None
# Referenced so that it is never garbage-collected (and warned about) while it runs.
_reaper: subprocess.Popen[bytes] | None = None


def ensure_started(owner: str, parents: Mapping[str, Path]) -> None:
    """Start this process's reaper, once; ``owner`` is the prefix of its groups' names."""
    global _started_for, _pipe_write_end, _reaper
    with _lock:
        if _started_for == os.getpid():
            return
        read_end, write_end = os.pipe()  # neither end is inherited across exec
        try:
            reaper = subprocess.Popen(
                [sys.executable, "-m", __name__, owner]
                + [f"{controller}={path}" for controller, path in parents.items()],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C meant for the engine must not reach it
            )
        except OSError:
            os.close(write_end)
            return  # no backstop, as without cgroups; the next process's sweep remains
        finally:
            os.close(read_end)
        if _pipe_write_end is not None:
            os.close(_pipe_write_end)  # the parent's, inherited by this forked child
        # Kept open for the process's lifetime: the kernel closes it when the process ends.
        _pipe_write_end = write_end
        _reaper = reaper
        _started_for = os.getpid()


def reap(owner: str, parents: Mapping[str, Path]) -> None:
    """Kill the tasks of every group of ``owner`` and remove the groups."""
    from .cgroups import RunCgroup

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
    try:
        while os.read(0, 4096):  # nothing is ever written: this returns at end of file
            pass
    except OSError:
        pass
    reap(owner, parents)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
