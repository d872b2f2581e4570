"""Refused forks, read from the kernel's own log (``/dev/kmsg``)."""

from __future__ import annotations

import contextlib
import os

KMSG = "/dev/kmsg"
_FORK_REFUSED = "fork rejected by pids controller in "


class KernelLog:
    """The kernel log's records written after this object was made (``/dev/kmsg``, root only).

    The pids controller logs "fork rejected by pids controller in <cgroup>" the first time it
    refuses a fork in a cgroup, in the refused fork itself: the record is there when the command
    ends, however soon after, while the container's cgroup (and its ``pids.events``) is removed
    with the container.
    """

    def __init__(self) -> None:
        self._fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.lseek(self._fd, 0, os.SEEK_END)
        except OSError:
            os.close(self._fd)
            raise
        self._seen: list[str] = []

    @classmethod
    def open(cls) -> KernelLog | None:
        """A reader from now on, or None when the kernel log cannot be read here."""
        try:
            return cls()
        except OSError:
            return None

    def _read(self) -> None:
        while True:
            try:
                record = os.read(self._fd, 8192)
            except BlockingIOError:
                return
            except BrokenPipeError:
                continue  # older records were overwritten; reading goes on with the next one
            except OSError:
                return
            if not record:
                return
            text = record.decode(errors="replace").partition(";")[2]
            self._seen.append(text.split("\n", 1)[0])

    def fork_refused_in(self, cgroup_name: str) -> bool:
        """Whether the pids controller refused a fork in a cgroup whose last path component is
        ``cgroup_name`` (a container id) since this reader was opened."""
        self._read()
        suffix = "/" + cgroup_name
        for message in self._seen:
            line = message.strip()
            if not line.endswith(suffix):
                continue
            # The path may arrive as a record of its own (a continuation split by other CPUs'
            # messages); an OOM report naming the same cgroup has other text around it.
            if _FORK_REFUSED in line or (line.startswith("/") and " " not in line):
                return True
        return False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)
