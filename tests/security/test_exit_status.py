"""A command's result is its own: it cannot report another exit status, nor end its own watch.

PID 1 of the command's sandbox reports the command's exit status: entering a warm sandbox, the
compiled set-up step writes it to a pipe of the engine's once every process of the command is
gone; on a cold start PID 1 exits with it (the set-up step on ``unshare``; on ``bwrap`` the
compiled one under ``--as-pid-1``, whose exit bubblewrap's monitor reports). The command runs as
the same user as that init, in the same PID namespace: it must not be able to write a status of
its own choosing to the init's descriptors (through ``/proc/1/fd`` or ``pidfd_getfd``: a status
pipe, or an eventfd as bubblewrap's own init reports on), which would end the engine's watch
while the command goes on and report what the command chose. Every local backend, cold and warm.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from tests.security.backends import STARTS, started

pytestmark = pytest.mark.integration

# Tries to write a status of 0 to every descriptor of its PID 1 it can reach (4 bytes, as the
# warm init reports; 8, as an eventfd takes them, where 4 are refused), then keeps running: the
# engine must wait for it and report its own exit code, 3.
FORGE = textwrap.dedent(
    """
    import ctypes, os, struct, time
    reached = []

    def forge(out):
        for status in (struct.pack("=i", 0), struct.pack("=Q", 1)):  # eventfd: 1 + status
            try:
                os.write(out, status)
                return True
            except OSError:
                pass
        return False

    for fd in range(16):
        try:
            out = os.open(f"/proc/1/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            out = -1
        if out < 0:
            try:
                pidfd = os.pidfd_open(1)
                out = ctypes.CDLL(None, use_errno=True).syscall(438, pidfd, fd, 0)
                os.close(pidfd)
            except OSError:
                out = -1
        if out >= 0:
            if forge(out):
                reached.append(fd)
            os.close(out)
    print("reached", reached, flush=True)
    time.sleep(0.3)
    print("still watched", flush=True)
    raise SystemExit(3)
    """
)


@pytest.mark.parametrize("level", ["standard", "locked"])
@pytest.mark.parametrize("start", sorted(STARTS))
def test_a_command_cannot_report_a_status_of_its_own(
    tmp_path: Path, start: str, level: str
) -> None:
    with (
        started(start) as backend,
        Cleanroom(tmp_path / "ws", policy=level, backend=backend, seed=1) as room,
    ):
        for _ in range(3):  # warm: the first may build the warm sandbox, the others enter it
            result = room.run(["python3", "-c", FORGE])
            assert result.exit_code == 3, result.stderr
            assert result.stdout == "reached []\nstill watched\n", result.stderr
        assert bool(backend.warm_holders) == start.endswith("-warm")
