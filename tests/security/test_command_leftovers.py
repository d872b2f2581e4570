"""A command never finds what an earlier command of the same cleanroom left outside the workspace.

Commands of one cleanroom may start in a sandbox kept warm for it (see
``pytest_cleanroom/backends/_warm.py``); whatever the backend, each must start as clean as the
first: no file in ``/tmp``, ``/dev/shm`` or anywhere else it could write outside the workspace,
no SysV IPC object, no process, no listening socket (abstract unix or loopback TCP), and the
sandbox's keeper out of reach, so that a command cannot spoil or spy on the ones after it.
Each attack is a first command; a second one looks for what it left (sentinel exit codes).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from tests.security.backends import LOCAL_BACKENDS

pytestmark = pytest.mark.integration

LOCAL = LOCAL_BACKENDS
#: Levels whose commands get a private /tmp and a PID namespace of their own.
LEVELS = ("standard", "strict", "locked")

# Holds an abstract unix socket and a loopback TCP port (any free one), then waits.
DAEMON = textwrap.dedent(
    """
    import socket, time
    a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    a.bind("\\0cleanroom-leftover"); a.listen()
    t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind(("127.0.0.1", 0)); t.listen()
    print(t.getsockname()[1], flush=True)
    time.sleep(120)
    """
)
# Leaves everything it can: files wherever it may write, SysV IPC objects, the daemon above in
# a session of its own. Prints the daemon's TCP port.
LEAVE = textwrap.dedent(
    r"""
    import ctypes, os, socket, subprocess, sys
    written = []
    for directory in ("/tmp", "/dev/shm", "/var/tmp", "/run", "/run/lock", "/", "/dev", "/etc",
                      "/home", "/root", "/mnt", "/srv", "/media", "/opt", "/usr/local", "/var"):
        try:
            with open(os.path.join(directory, "cleanroom-leftover"), "w") as f:
                f.write("left by an earlier command")
            written.append(directory)
        except OSError:
            pass
    libc = ctypes.CDLL(None, use_errno=True)
    IPC_CREAT = 0o1000
    shm = libc.shmget(0x0C1EA000, 4096, IPC_CREAT | 0o666)
    sem = libc.semget(0x0C1EA001, 1, IPC_CREAT | 0o666)
    msg = libc.msgget(0x0C1EA002, IPC_CREAT | 0o666)
    daemon = DAEMON
    child = subprocess.Popen([sys.executable, "-c", daemon], stdout=subprocess.PIPE,
                             start_new_session=True, env={"CLEANROOM_LEFTOVER": "1"})
    port = int(child.stdout.readline())
    print(port, "wrote", written, "ipc", shm, sem, msg, "daemon", child.pid)
    """
).replace("DAEMON", repr(DAEMON))

# Exits 0 when nothing of the above is found, else with the sentinel of the first find
# (argument: the TCP port the daemon had).
FIND = textwrap.dedent(
    r"""
    import ctypes, os, socket, sys
    for directory in ("/tmp", "/dev/shm", "/var/tmp", "/run", "/run/lock", "/", "/dev", "/etc",
                      "/home", "/root", "/mnt", "/srv", "/media", "/opt", "/usr/local", "/var"):
        if os.path.exists(os.path.join(directory, "cleanroom-leftover")):
            print("file left in", directory); sys.exit(41)
    libc = ctypes.CDLL(None, use_errno=True)
    if (libc.shmget(0x0C1EA000, 0, 0) >= 0 or libc.semget(0x0C1EA001, 0, 0) >= 0
            or libc.msgget(0x0C1EA002, 0) >= 0):
        print("SysV IPC object left"); sys.exit(42)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = open(f"/proc/{pid}/environ", "rb").read()
        except OSError:
            continue
        if b"CLEANROOM_LEFTOVER=1" in environ.split(b"\0"):
            print("process left:", pid); sys.exit(43)
    a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        a.connect("\0cleanroom-leftover")
        print("abstract socket left"); sys.exit(44)
    except OSError:
        pass
    t = socket.socket()
    try:
        t.connect(("127.0.0.1", int(sys.argv[1])))
        print("TCP listener left"); sys.exit(45)
    except OSError:
        pass
    print("clean")
    """
)

# Goes after whatever keeps the sandbox: every process it can see is killed (PID 1, its own
# set-up step, ignores it); it prints how many it saw besides itself and PID 1.
ATTACK_KEEPER = textwrap.dedent(
    r"""
    import os, signal, sys
    mine = {os.getpid(), os.getppid()}
    others = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        pid = int(pid)
        if pid in mine or pid == 1:
            continue
        others.append(pid)
    for pid in others + [1]:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    print("others", len(others))
    sys.stdout.flush()
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    """
)


@pytest.fixture(params=LOCAL)
def local_backend(request: pytest.FixtureRequest) -> str:
    from tests.security.backends import require_backend

    name: str = request.param
    require_backend(name)
    return name


@pytest.mark.parametrize("level", LEVELS)
def test_a_command_finds_nothing_an_earlier_one_left(
    tmp_path: Path, local_backend: str, level: str
) -> None:
    with Cleanroom(tmp_path / "ws", policy=level, backend=local_backend, seed=1) as room:
        left = room.run(["python3", "-c", LEAVE])
        assert left.exit_code == 0, left.stderr
        assert "/tmp" in left.stdout  # the attack really wrote where it may
        port = left.stdout.split()[0]
        found = room.run(["python3", "-c", FIND, port])
        assert (found.exit_code, found.stdout) == (0, "clean\n"), found.stderr


@pytest.mark.parametrize("level", LEVELS)
def test_a_command_cannot_spoil_the_commands_after_it(
    tmp_path: Path, local_backend: str, level: str
) -> None:
    with Cleanroom(tmp_path / "ws", policy=level, backend=local_backend, seed=1) as room:
        before = room.run(["sh", "-c", "hostname; ls /proc/1/ns >/dev/null && echo ns"])
        attack = room.run(["python3", "-c", ATTACK_KEEPER])
        assert (attack.exit_code, attack.stdout) == (0, "others 0\n"), attack.stderr
        for _ in range(2):
            after = room.run(["sh", "-c", "hostname; ls /proc/1/ns >/dev/null && echo ns"])
            assert (after.exit_code, after.stdout) == (0, before.stdout), after.stderr
        assert before.stdout == "cleanroom\nns\n"


@pytest.mark.parametrize("level", LEVELS)
def test_the_sandbox_keeper_is_out_of_sight(tmp_path: Path, local_backend: str, level: str) -> None:
    """Only the command's own processes are listed: its PID 1 (the set-up step) and its tree."""
    with Cleanroom(tmp_path / "ws", policy=level, backend=local_backend, seed=1) as room:
        room.run(["true"]).assert_success()
        seen = room.run(["sh", "-c", "ls -d /proc/[0-9]* | wc -l"])
        # PID 1, the shell, ls and wc (the command substitution's subshell at most).
        assert int(seen.stdout) <= 5, seen.stdout
