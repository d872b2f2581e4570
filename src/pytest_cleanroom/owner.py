"""Process identity: the one :class:`Owner` every leftover sweeper judges liveness by."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def start_token(pid: int | str) -> str | None:
    """Something that changes when ``pid`` is reused: its start time. ``None`` if it is gone."""
    if sys.platform.startswith("linux"):
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
            return None
        # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
        fields = raw[raw.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            return None  # a zombie has already exited
        return fields[19]  # field 22 of stat: start time in clock ticks since boot
    try:
        out = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)],
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def is_alive(pid: int, token: str | None = None) -> bool:
    """True when ``pid`` runs and, if ``token`` is given, is still the same process."""
    if pid <= 0:
        return False
    current = start_token(pid)
    if current is None:
        return False
    return not token or current == token


def pid_namespace() -> str:
    """This process's pid namespace (``pid:[<inode>]``), or ``""`` where it cannot be read."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


@dataclass(frozen=True)
class Owner:
    """The process whose death makes a server, container or cgroup a leftover.

    ``token`` (the start time) guards against pid reuse; ``host`` and ``pidns`` say where ``pid``
    means something. An owner on another host or in another pid namespace cannot be judged from
    here (its pid names another process, or none, in ours), so it counts as **alive**: a sweeper
    never removes what might still be in use. An empty ``pidns`` (a record from before it was
    recorded) is taken as this namespace.
    """

    pid: int
    token: str | None
    host: str
    pidns: str

    @classmethod
    def current(cls, pid: int | None = None) -> Owner:
        """The owner for ``pid`` (default: this process) on this host."""
        pid = os.getpid() if pid is None else pid
        return cls(pid, start_token(pid), socket.gethostname(), pid_namespace())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Owner:
        return cls(
            int(data["pid"]), data.get("token"), str(data["host"]), str(data.get("pidns", ""))
        )

    def is_local(self) -> bool:
        """Whether this process can judge the owner's liveness (same host, same pid namespace)."""
        return self.host == socket.gethostname() and self.pidns in ("", pid_namespace())

    def is_alive(self) -> bool:
        """Alive, or not ours to judge (another host or pid namespace)."""
        return not self.is_local() or is_alive(self.pid, self.token)

    def group_prefix(self) -> str:
        """The start of the names of the cgroups this owner creates (see :meth:`of_group`)."""
        ns = self.pidns.removeprefix("pid:[").removesuffix("]")
        return f"{self.pid}-{self.token}-ns{ns}-"

    @classmethod
    def of_group(cls, name: str) -> Owner | None:
        """The owner named by a cgroup's name (``<pid>-<start>-ns<inode>-...``, or the older
        ``<pid>-<start>-...``), or ``None`` when the name is not one of ours."""
        pid, _, rest = name.partition("-")
        token, _, rest = rest.partition("-")
        if not pid.isdigit():
            return None
        ns = rest.partition("-")[0]
        pidns = f"pid:[{ns[2:]}]" if ns.startswith("ns") and ns[2:].isdigit() else ""
        # Cgroups are local to this machine, whatever its hostname says.
        return cls(int(pid), token, socket.gethostname(), pidns)
