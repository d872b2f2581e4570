"""What a sandbox's launcher needs to know about the command, handed over through a descriptor.

The command's environment (and, for ``unshare``, the whole set-up plan) never goes on a command
line, which every local user can read in ``/proc/PID/cmdline``, nor into the environment of the
launchers that run in the host's namespaces (``/bin/sh``, ``setpriv``, ``unshare``, ``bwrap``),
where ``LD_PRELOAD`` and friends would run code outside the sandbox. It is written to an
anonymous memory file; the launcher opens it at :data:`HANDOFF_FD` through this process's
``/proc/PID/fd`` entry (a launcher made ahead of time cannot inherit a descriptor made later),
and the sandbox tool or set-up step reads it there.
"""

from __future__ import annotations

import os
from types import MappingProxyType

#: The descriptor the launcher opens the handoff at (single digit: dash's redirections).
HANDOFF_FD = 8
#: The whole environment of every launcher that runs in the host's namespaces.
LAUNCHER_ENV = MappingProxyType({"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


class Handoff:
    """An anonymous, close-on-exec memory file holding ``data``, readable from its start."""

    def __init__(self, data: bytes) -> None:
        self.fd = os.memfd_create("cleanroom-handoff", os.MFD_CLOEXEC)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
        except BaseException:
            os.close(self.fd)
            raise

    @property
    def path(self) -> str:
        """A path that opens the file anew (offset 0) from any process allowed to read ours."""
        return f"/proc/{os.getpid()}/fd/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Handoff:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
