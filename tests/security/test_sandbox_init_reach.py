"""A command cannot reach the PID 1 of its sandbox, nor through it another command's data.

PID 1 of the command's PID namespace (the compiled set-up step entering a warm sandbox; on a
cold start the set-up step on ``unshare``, compiled or in Python, and on ``bwrap`` the compiled
one run by bubblewrap with ``--as-pid-1``) keeps its capabilities in the sandbox's user namespace
while the command runs, and may hold the command's output pipes and the pipe it reports the exit
status on. The command runs as the same user in the same namespaces: it must be unable to read
or write anything of PID 1 (memory, environment, descriptors, root and working directory), to
trace it, to take its descriptors, or to stop or kill it, so that the result the engine gets is
the command's own. Every local backend, cold and warm (the VM's user boot, whose commands all
start cold, runs the cold cases as a non-root engine).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from tests.security.backends import STARTS, started

pytestmark = pytest.mark.integration

# Every way to PID 1 it tries; prints those that worked, then exits 7 (its own code, which the
# engine must report). Listing /proc/1/fd is let through (same owner; the numbers only): what
# each descriptor is, and opening it, are not. Only for levels with a PID namespace of their own
# (``permissive`` shares the host's: its PID 1 is the machine's init).
ATTACK = textwrap.dedent(
    r"""
    import ctypes, os, signal, struct, sys, time
    libc = ctypes.CDLL(None, use_errno=True)
    reached = []

    def attempt(name, action):
        try:
            if action() is not False:
                reached.append(name)
        except OSError:
            pass

    def syscall_ok(*args):
        return libc.syscall(*args) >= 0

    attempt("environ", lambda: open("/proc/1/environ", "rb").read())
    attempt("mem-read", lambda: os.pread(os.open("/proc/1/mem", os.O_RDONLY), 8, 4096))
    attempt("mem-write", lambda: os.open("/proc/1/mem", os.O_WRONLY))
    attempt("maps", lambda: open("/proc/1/maps").read() != "" or False)
    attempt("fd-link", lambda: os.readlink("/proc/1/fd/0"))
    for fd in range(8):
        attempt(f"fd-open-{fd}", lambda: os.open(f"/proc/1/fd/{fd}", os.O_RDWR | os.O_NONBLOCK))
        attempt(f"fd-read-{fd}", lambda: os.open(f"/proc/1/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK))
    attempt("root", lambda: os.listdir("/proc/1/root/"))
    attempt("cwd", lambda: os.listdir("/proc/1/cwd/"))
    attempt("map_files", lambda: os.listdir("/proc/1/map_files"))
    attempt("syscall", lambda: open("/proc/1/syscall").read())
    attempt("stack", lambda: open("/proc/1/stack").read())
    # PTRACE_ATTACH, PTRACE_SEIZE
    attempt("ptrace-attach", lambda: syscall_ok(101, 16, 1, None, None))
    attempt("ptrace-seize", lambda: syscall_ok(101, 0x4206, 1, None, None))
    # process_vm_readv of 8 bytes of PID 1 (any address: EFAULT still means it was let in)
    buf = ctypes.create_string_buffer(8)
    local = (ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 8)
    remote = (ctypes.c_void_p * 2)(4096, 8)
    def vm_read():
        got = libc.syscall(310, 1, local, 1, remote, 1, 0)
        return got >= 0 or ctypes.get_errno() == 14
    attempt("process_vm_readv", vm_read)
    try:
        pidfd = os.pidfd_open(1)
    except OSError:
        pidfd = -1
    if pidfd >= 0:
        for fd in range(8):
            attempt(f"pidfd_getfd-{fd}", lambda: syscall_ok(438, pidfd, fd, 0))
    # Signals PID 1 could die or stop of, were they delivered.
    for sig in (signal.SIGSTOP, signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV, signal.SIGCHLD):
        try:
            os.kill(1, sig)
        except OSError:
            pass
    time.sleep(0.2)
    state = open("/proc/1/stat").read().rsplit(")", 1)[1].split()[0]
    if state in ("T", "t", "Z", "X"):
        reached.append("signal:" + state)
    print("reached", reached, flush=True)
    sys.exit(7)
    """
)


@pytest.mark.parametrize("level", ["standard", "locked"])
@pytest.mark.parametrize("start", sorted(STARTS))
def test_a_command_cannot_reach_its_sandboxes_init(tmp_path: Path, start: str, level: str) -> None:
    with (
        started(start) as backend,
        Cleanroom(tmp_path / "ws", policy=level, backend=backend, seed=1, timeout=60) as room,
    ):
        for _ in range(3):  # warm: the first may build the warm sandbox, the others enter it
            result = room.run(["python3", "-c", ATTACK])
            assert (result.exit_code, result.stdout) == (7, "reached []\n"), result.stderr
            after = room.run(["echo", "next"])
            assert (after.exit_code, after.stdout) == (0, "next\n"), after.stderr
        assert bool(backend.warm_holders) == start.endswith("-warm")
