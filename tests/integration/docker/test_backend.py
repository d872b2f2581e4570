"""The ``docker`` backend end to end: every policy field enforced in a real container.

Each command runs in a container of ``cleanroom/bookworm:latest`` on the engine named by
``DOCKER_HOST``; the host side checks what the container could not do.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_cleanroom import Cleanroom, Policy, RunResult
from pytest_cleanroom.backends import docker as docker_backend
from pytest_cleanroom.backends.idmap import SANDBOX_UID
from pytest_cleanroom.containers import LABEL_OWNER_PID, LABEL_RUN, owner_labels, run_id
from pytest_cleanroom.errors import BackendUnavailableError
from pytest_cleanroom.policy import MiB
from pytest_cleanroom.testing.leftovers import MARKER_VARIABLE, processes_with_marker
from pytest_cleanroom.testing.listener import Listener

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.usefixtures("local_images")]

SMALL = Policy.level("locked").replace(
    memory_limit=96 * MiB,
    max_processes=40,
    max_file_size=4 * MiB,
    max_open_files=64,
    cpu_time_limit=1.0,
    timeout=60.0,
)


@pytest.fixture
def room(tmp_path: Path, docker_client: Any) -> Iterator[Cleanroom]:
    with Cleanroom(tmp_path / "ws", backend="docker", seed=7) as cleanroom:
        yield cleanroom


@pytest.fixture
def locked(tmp_path: Path, docker_client: Any) -> Iterator[Cleanroom]:
    with Cleanroom(tmp_path / "ws", backend="docker", policy="locked") as cleanroom:
        yield cleanroom


@pytest.fixture
def small(tmp_path: Path, docker_client: Any) -> Iterator[Cleanroom]:
    with Cleanroom(tmp_path / "ws", backend="docker", policy=SMALL) as cleanroom:
        yield cleanroom


def my_containers(docker_client: Any) -> list[Any]:
    """Containers (running or not) that this test process created."""
    filters = {"label": [f"{LABEL_OWNER_PID}={os.getpid()}"]}
    return list(docker_client.containers.list(all=True, filters=filters, ignore_removed=True))


def py(room: Cleanroom, code: str, **kwargs: Any) -> RunResult:
    return room.run(["python3", "-c", code], **kwargs)


# -- running commands ---------------------------------------------------------------------------


def test_command_runs_in_the_image_with_the_workspace_at_workspace(
    room: Cleanroom, docker_client: Any
) -> None:
    room.workspace.write("in.txt", "from the host")
    result = py(
        room,
        "import os, sys\n"
        "print(os.getcwd(), open('in.txt').read())\n"
        "open('out.txt', 'w').write('from the container')\n"
        "sys.stderr.write('to stderr\\n'); sys.exit(3)",
    )
    assert result.backend == "docker"
    assert result.exit_code == 3
    assert result.stdout == "/workspace from the host\n"
    assert result.stderr == "to stderr\n"
    assert room.workspace.read("out.txt") == "from the container"
    assert Path(room.workspace.root / "out.txt").stat().st_uid == room.workspace.root.stat().st_uid
    assert my_containers(docker_client) == []


def test_stdin_cwd_and_string_commands(room: Cleanroom) -> None:
    room.workspace.mkdir("sub/dir")
    result = room.run("pwd; cat; echo; cat >&2 </dev/null; exit 5", stdin="line one\nline two")
    assert (result.exit_code, result.stdout) == (5, "/workspace\nline one\nline two\n")
    room.run("pwd", cwd="sub/dir").assert_success().assert_stdout_contains("/workspace/sub/dir")
    big = os.urandom(3 << 20)
    piped = room.run(["sha256sum"], stdin=big)
    import hashlib

    assert piped.stdout.split()[0] == hashlib.sha256(big).hexdigest()


def test_missing_and_non_executable_programs(room: Cleanroom) -> None:
    missing = room.run(["no-such-program-xyz", "arg"])
    assert missing.exit_code == 127
    assert missing.stderr == "cleanroom: command not found: no-such-program-xyz\n"
    room.workspace.write("script.sh", "#!/bin/sh\necho hi\n", mode=0o644)
    denied = room.run(["./script.sh"])
    assert denied.exit_code == 126
    assert denied.stderr.startswith("cleanroom: cannot execute ./script.sh: ")


def test_a_host_interpreter_or_console_script_is_named_as_the_hosts(room: Cleanroom) -> None:
    # The image has its own python3 but not this host's venv: the error says the program is the
    # host's, that containers do not share it, and what to do instead.
    for argv, shown in (
        ([sys.executable, "-c", "print(1)"], f"{sys.executable} exists on this host, "),
        (["ggen", "--help"], f"ggen exists on this host as {Path(sys.prefix, 'bin', 'ggen')}, "),
    ):
        result = room.run(argv)
        assert result.exit_code == 127
        lines = result.stderr.splitlines()
        assert lines[0] == f"cleanroom: command not found: {argv[0]}"
        assert lines[1].startswith(f"cleanroom: {shown}but the docker backend runs commands on ")
        assert "(cleanroom/bookworm:latest), which has no such program" in lines[1]
        assert "install the package in the image, or use a local backend" in lines[1]
    room.run(["python3", "-c", "print(1)"]).assert_success()  # the image's own is the way


def test_large_and_binary_output_on_both_streams(room: Cleanroom) -> None:
    result = py(
        room,
        "import sys\n"
        "sys.stdout.buffer.write(b'o' * (50 << 20)); sys.stderr.buffer.write(b'\\xff\\xfe' * 1000)",
    )
    result.assert_success()
    assert len(result.stdout_bytes) == 50 << 20
    assert result.stderr_bytes == b"\xff\xfe" * 1000
    assert "\ufffd" in result.stderr


def test_environment_is_exactly_the_one_given(
    room: Cleanroom, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLEANROOM_HOST_ONLY", "must-not-leak")
    # `env` rather than python3, which adds LC_CTYPE to its own environment (PEP 538).
    result = room.run(["env", "-0"])
    seen = dict(item.split("=", 1) for item in result.stdout.split("\0") if item)
    assert seen == dict(result.environment)
    assert "HOSTNAME" not in seen  # Docker's own variable is not added
    assert "CLEANROOM_HOST_ONLY" not in seen
    assert seen["HOME"].startswith("/workspace")


# -- filesystem ---------------------------------------------------------------------------------


def test_root_is_read_only_tmp_is_private_and_host_files_absent(
    locked: Cleanroom, tmp_path: Path
) -> None:
    host_file = tmp_path / "host-only.txt"
    host_file.write_text("host")
    result = py(
        locked,
        "import os\n"
        f"print(os.path.exists({str(host_file)!r}))\n"
        "for target in ('/etc/x', '/usr/x', '/x'):\n"
        "    try:\n"
        "        open(target, 'w')\n"
        "        print('wrote', target)\n"
        "    except OSError as e:\n"
        "        print('refused', e.errno)\n"
        "open('/tmp/t', 'w').write('tmp ok')\n"
        "mounts = [l.split() for l in open('/proc/mounts')]\n"
        "print([m[2] for m in mounts if m[1] == '/tmp'], [m[3].split(',')[0] for m in mounts"
        " if m[1] == '/'])",
    )
    result.assert_success()
    lines = result.stdout.splitlines()
    assert lines[0] == "False"
    assert lines[1:4] == ["refused 30"] * 3  # EROFS
    assert lines[4] == "['tmpfs'] ['ro']"


def test_tmp_and_shm_split_max_disk_where_the_engine_cannot_see_our_mounts(
    tmp_path: Path, docker_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An engine in another mount namespace cannot be set up on this machine: its flag is
    # cleared instead, so that the fallback (Docker's own tmpfs, half of the budget each) runs
    # for real.
    policy = Policy.level("locked").replace(max_disk=8 * MiB, unprivileged_user=False)
    with Cleanroom(tmp_path / "ws", backend="docker", policy=policy) as room:
        room.run(["true"]).assert_success()
        engine = docker_backend._engine(docker_backend.docker_host())
        monkeypatch.setattr(engine, "shares_mounts", False)
        result = room.run(["df", "-B1", "--output=target,size", "/tmp", "/dev/shm", "/dev"])
        if os.geteuid() == 0:
            # The workspace's view cannot be bound either: locked is refused, never run as root.
            with pytest.raises(BackendUnavailableError, match="unprivileged_user=False"):
                room.run(["true"], policy="locked")
    result.assert_success()
    sizes = dict(line.split() for line in result.stdout.splitlines()[1:])
    assert sizes["/tmp"] == sizes["/dev/shm"] == str(4 * MiB), result.stdout


def test_hidden_paths_are_empty_and_readable_writable_paths_come_through(
    tmp_path: Path, docker_client: Any
) -> None:
    hidden = tmp_path / "hidden"
    (hidden / "secret").mkdir(parents=True)
    (hidden / "secret" / "key").write_text("s3cret")
    (hidden / "shared").mkdir()
    (hidden / "shared" / "data").write_text("shared data")
    rw = tmp_path / "rw"
    rw.mkdir()
    # As the workspace's owner (root): the paths under tmp_path are not for other users.
    policy = Policy.level("locked").replace(
        hidden_paths=("/root", "/etc/shadow", str(hidden)),
        readable_paths=(str(hidden / "shared"),),
        writable_paths=(str(rw),),
        unprivileged_user=False,
    )
    with Cleanroom(tmp_path / "ws", backend="docker", policy=policy) as room:
        result = py(
            room,
            "import os\n"
            "print(os.listdir('/root'), repr(open('/etc/shadow').read()))\n"
            f"print(os.path.exists({str(hidden / 'secret')!r}))\n"
            f"print(open({str(hidden / 'shared' / 'data')!r}).read())\n"
            "try:\n"
            f"    open({str(hidden / 'shared' / 'new')!r}, 'w')\n"
            "    print('wrote shared')\n"
            "except OSError as e:\n"
            "    print('shared is read-only', e.errno)\n"
            f"open({str(rw / 'made')!r}, 'w').write('by the container')",
        )
    result.assert_success()
    assert result.stdout.splitlines() == [
        "[] ''",
        "False",
        "shared data",
        "shared is read-only 30",
    ]
    assert (rw / "made").read_text() == "by the container"
    assert not (hidden / "shared" / "new").exists()


# -- processes, privileges, network -------------------------------------------------------------


def test_no_capabilities_no_new_privileges_own_pid_namespace(locked: Cleanroom) -> None:
    result = py(
        locked,
        "import os\n"
        "status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines())\n"
        "print(status['CapEff'].strip(), status['CapBnd'].strip(), status['NoNewPrivs'].strip())\n"
        "pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())\n"
        "print(os.getuid(), pids[0], len(pids))",
    )
    result.assert_success()
    caps, ids = result.stdout.splitlines()
    assert caps == "0000000000000000 0000000000000000 1"
    uid, first_pid, count = map(int, ids.split())
    owner = locked.workspace.root.stat().st_uid
    assert uid == (SANDBOX_UID if owner == 0 else owner)  # locked: never root
    # docker-init is PID 1 and the command its child: none of the host's processes is visible.
    assert first_pid == 1
    assert count <= 3


CONNECT = (
    "import socket, sys\n"
    "try:\n"
    "    s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)\n"
    "    print(s.recv(100).decode())\n"
    "except OSError as e:\n"
    "    print('refused', type(e).__name__)\n"
)


def test_isolated_network_has_only_loopback_host_network_reaches_the_host(
    tmp_path: Path, docker_client: Any
) -> None:
    server = Listener()
    try:
        with Cleanroom(tmp_path / "a", backend="docker", policy="standard") as open_room:
            reached = open_room.run(["python3", "-c", CONNECT, str(server.port)])
        with Cleanroom(tmp_path / "b", backend="docker", policy="locked") as closed_room:
            blocked = closed_room.run(["python3", "-c", CONNECT, str(server.port)])
            interfaces = closed_room.run("cat /proc/net/dev | tail -n +3 | cut -d: -f1")
    finally:
        server.close()
    assert reached.stdout.strip() == server.banner
    assert blocked.stdout.startswith("refused")
    assert interfaces.stdout.split() == ["lo"]


def test_service_socket_directory_is_reachable_under_isolated_network(
    tmp_path: Path, docker_client: Any
) -> None:
    socket_dir = tmp_path / "svc"
    socket_dir.mkdir()
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(socket_dir / "s.sock"))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"PONG from the host service")

    threading.Thread(target=serve, daemon=True).start()
    code = (
        "import os, socket\n"
        "s = socket.socket(socket.AF_UNIX); s.connect(os.environ['SVC_SOCKET'])\n"
        "print(s.recv(100).decode())"
    )
    try:
        with Cleanroom(tmp_path / "ws", backend="docker", policy="locked") as room:
            room.expose_service("redis", socket_dir, {"SVC_SOCKET": str(socket_dir / "s.sock")})
            result = room.run(["python3", "-c", code])
            refused = room.run(
                ["python3", "-c", code], policy=Policy.level("locked").replace(allowed_services=())
            )
    finally:
        server.close()
    assert result.stdout.strip() == "PONG from the host service"
    assert refused.exit_code != 0  # neither mounted nor announced


# -- limits -------------------------------------------------------------------------------------


def test_timeout_kills_the_container_and_removes_it(tmp_path: Path, docker_client: Any) -> None:
    marker = uuid.uuid4().hex
    with Cleanroom(tmp_path, backend="docker") as room:
        result = room.run(
            "sleep 300 & (sleep 300 &); sleep 300", timeout=1, env={MARKER_VARIABLE: marker}
        )
    assert result.timed_out
    result.assert_limit_exceeded("timeout")
    assert result.exit_code == 137
    assert processes_with_marker(marker) == []
    assert my_containers(docker_client) == []


def test_memory_hog_is_stopped_and_reported(small: Cleanroom) -> None:
    result = py(small, "x = []\nwhile True: x.append(bytearray(1 << 20))")
    result.assert_limit_exceeded("memory")
    assert result.exit_code == 137
    assert result.peak_memory is not None
    assert SMALL.memory_limit is not None
    assert result.peak_memory <= SMALL.memory_limit + MiB


def test_fork_bomb_is_stopped_and_reported(small: Cleanroom) -> None:
    # The outer shell then spins without forking: the backend sees the refused forks while the
    # container runs and kills it (137), unless the outer shell's own fork was refused first,
    # which ends it with dash's status 2. Either way the limit is named and nothing is left.
    result = small.run("bomb() { bomb | bomb & }; bomb; while :; do :; done", timeout=30)
    result.assert_limit_exceeded("processes")
    assert result.exit_code in (2, 137), result.describe()


@pytest.mark.parametrize("poll", ["every tick", "too late"])
def test_a_command_exiting_right_after_a_refused_fork_is_reported_as_processes(
    small: Cleanroom, monkeypatch: pytest.MonkeyPatch, poll: str
) -> None:
    # Forks children that wait on a pipe until a fork is refused, then exits at once; the
    # children see the pipe close and exit too, so the container ends a few milliseconds after
    # the refusal. "too late": the backend's live watch of the container is slowed down so that
    # it cannot see the refusal while the container exists (what happens under load when the
    # command ends between two looks): the report must come from what outlives the container.
    if poll == "too late":
        monkeypatch.setattr(docker_backend, "TICK", 30.0)
    result = py(
        small,
        "import os\n"
        "r, w = os.pipe()\n"
        "while True:\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except BlockingIOError:\n"
        "        os._exit(3)\n"
        "    if pid == 0:\n"
        "        os.close(w)\n"
        "        os.read(r, 1)\n"
        "        os._exit(0)",
    )
    result.assert_limit_exceeded("processes")
    if poll == "too late":
        assert result.exit_code == 3  # not killed: it ended by itself
    else:  # its own exit code, or 137 when the live watch saw the refusal first and killed it
        assert result.exit_code in (3, 137)


@pytest.mark.parametrize("max_processes", [1, 2])
def test_a_tiny_task_limit_counts_the_command_not_the_container_set_up(
    tmp_path: Path, docker_client: Any, max_processes: int
) -> None:
    # The runtime forks while it sets the container up; only the command's tasks count.
    policy = SMALL.replace(max_processes=max_processes)
    with Cleanroom(tmp_path / "ws", backend="docker", policy=policy) as room:
        room.run(["true"]).assert_success()
        result = room.run(["sh", "-c", "sleep 0 & wait"])  # two tasks: sh and sleep
    if max_processes == 1:
        result.assert_limit_exceeded("processes")
    else:
        result.assert_success()
        assert result.limit_exceeded is None


def test_a_command_reaching_but_not_exceeding_the_task_limit_is_not_reported(
    small: Cleanroom,
) -> None:
    # Exactly max_processes tasks at once (this one and 39 children) is allowed.
    assert SMALL.max_processes == 40
    result = py(
        small,
        "import os\n"
        "r, w = os.pipe()\n"
        "kids = []\n"
        "for _ in range(39):\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os.close(w); os.read(r, 1); os._exit(0)\n"
        "    kids.append(pid)\n"
        "os.close(w)\n"
        "for pid in kids: os.waitpid(pid, 0)\n"
        "print(len(kids))",
    )
    result.assert_success().assert_stdout_contains("39")
    assert result.limit_exceeded is None


def test_disk_fillers_are_stopped_by_the_file_size_limit(small: Cleanroom) -> None:
    result = small.run("cat /dev/zero > big")
    result.assert_limit_exceeded("file_size")
    assert result.exit_code == 128 + 25  # SIGXFSZ
    assert small.workspace.path("big").stat().st_size <= 4 * MiB
    # Python ignores SIGXFSZ and gets EFBIG: the file stopped at the limit gives it away.
    ignoring = py(small, "f = open('big2', 'wb')\nwhile True: f.write(b'x' * 4096)")
    assert "File too large" in ignoring.stderr
    ignoring.assert_limit_exceeded("file_size")
    in_tmp = small.run("cat /dev/zero > /tmp/big")
    in_tmp.assert_limit_exceeded("file_size")


def test_cpu_time_per_process_and_for_the_whole_tree(small: Cleanroom) -> None:
    single = py(small, "while True: pass")
    single.assert_limit_exceeded("cpu_time")
    assert not single.timed_out
    # Four busy children, none reaching the per-process limit on its own: the cgroup sees them.
    tree = small.run(
        "for i in 1 2 3 4; do (while :; do :; done) & done; wait",
        policy=SMALL.replace(cpu_time_limit=2.0),
    )
    tree.assert_limit_exceeded("cpu_time")
    assert tree.exit_code == 137


def test_open_files_limit_is_enforced(small: Cleanroom) -> None:
    result = py(small, "fs = [open('/dev/null') for _ in range(200)]")
    assert result.exit_code == 1
    assert "Too many open files" in result.stderr


def test_measurements_of_a_normal_command(small: Cleanroom) -> None:
    result = py(small, "b = bytearray(40 << 20); sum(range(10**6))")
    result.assert_success()
    assert result.peak_memory is not None
    assert result.peak_memory >= 40 * MiB
    assert result.cpu_time is not None
    assert result.cpu_time > 0
    assert result.duration > 0


# -- lifecycle: labels, close(), removal -------------------------------------------------------


def test_close_from_another_thread_kills_the_labelled_container(
    tmp_path: Path, docker_client: Any
) -> None:
    marker = uuid.uuid4().hex
    results: list[RunResult] = []
    room = Cleanroom(tmp_path, backend="docker")
    worker = threading.Thread(
        target=lambda: results.append(room.run("sleep 300", env={MARKER_VARIABLE: marker}))
    )
    worker.start()
    deadline = time.monotonic() + 60
    while not (running := my_containers(docker_client)) or not processes_with_marker(marker):
        assert time.monotonic() < deadline, "the container never started"
        time.sleep(0.05)
    (container,) = running
    labels = container.labels
    expected = owner_labels(role="backend")
    assert {k: labels.get(k) for k in expected} == expected
    assert labels[LABEL_RUN] == run_id()
    room.close()
    worker.join(60)
    assert not worker.is_alive()
    (result,) = results
    assert result.exit_code == 137
    assert "cleanroom was closed" in result.stderr
    assert processes_with_marker(marker) == []
    assert my_containers(docker_client) == []


def test_cancel_stops_a_running_container_and_the_room_lives_on(
    room: Cleanroom, docker_client: Any
) -> None:
    marker = uuid.uuid4().hex
    results: list[RunResult] = []
    worker = threading.Thread(
        target=lambda: results.append(room.run("sleep 300", env={MARKER_VARIABLE: marker}))
    )
    worker.start()
    deadline = time.monotonic() + 60  # guards against a hang only
    while not processes_with_marker(marker):
        assert worker.is_alive(), "the command ended before it was seen"
        assert time.monotonic() < deadline, "the command never started"
        time.sleep(0.02)
    assert room.cancel() == 1
    worker.join(60)
    (result,) = results
    assert result.cancelled
    assert result.exit_code == 137
    assert not result.succeeded
    assert processes_with_marker(marker) == []
    assert my_containers(docker_client) == []
    room.run(["echo", "again"]).assert_success().assert_stdout_contains("again")
