"""A command's result is its own: it cannot report another exit status, nor end its own watch.

A command entering a warm sandbox has its exit status written to the engine by its PID 1 (the
sandbox's init), once every process of the command is gone. The command runs as the same user
as that init, in the same PID namespace: it must not be able to write a status of its own
choosing to the init's descriptor (through ``/proc/1/fd`` or ``pidfd_getfd``), which would
end the engine's watch while the command goes on and report what the command chose.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from tests.security.backends import LOCAL_BACKENDS, require_backend

pytestmark = pytest.mark.integration

LOCAL = LOCAL_BACKENDS

# Tries to write a status of 0 to every descriptor of its PID 1 it can reach, then keeps
# running: the engine must wait for it and report its own exit code, 3.
FORGE = textwrap.dedent(
    """
    import ctypes, os, struct, time
    reached = []
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
            try:
                os.write(out, struct.pack("=i", 0))
                reached.append(fd)
            except OSError:
                pass
            os.close(out)
    print("reached", reached, flush=True)
    time.sleep(0.3)
    print("still watched", flush=True)
    raise SystemExit(3)
    """
)


@pytest.mark.parametrize("level", ["standard", "locked"])
@pytest.mark.parametrize("name", LOCAL)
def test_a_command_cannot_report_a_status_of_its_own(tmp_path: Path, name: str, level: str) -> None:
    require_backend(name)
    with Cleanroom(tmp_path / "ws", policy=level, backend=name, seed=1) as room:
        for _ in range(3):  # the first may build the warm sandbox, the others enter it
            result = room.run(["python3", "-c", FORGE])
            assert result.exit_code == 3, result.stderr
            assert result.stdout == "reached []\nstill watched\n", result.stderr
