"""Resource limits end to end: each breach ends the command and says which limit it was.

Small limits keep the hogs short. Every test also runs with cgroups switched off
(``CLEANROOM_CGROUPS=off``), which exercises the rlimit fallback unprivileged users get: opted in
with ``per_process_limits=True`` (refused without it, and then named so in every result).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.cgroups import SWITCH, parents
from pytest_cleanroom.errors import BackendUnavailableError, TreeLimitsError
from pytest_cleanroom.policy import MiB
from tests.conftest import require

pytestmark = pytest.mark.integration

SMALL = Policy.level("locked").replace(
    memory_limit=96 * MiB,
    max_processes=40,
    max_file_size=4 * MiB,
    max_open_files=64,
    cpu_time_limit=1.0,
    timeout=30.0,
)
_NO_NPROC = SMALL.replace(max_processes=None)


@pytest.fixture(params=["cgroups", "rlimits"])
def mechanism(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "cgroups":
        require(parents() is not None, "writable cgroup v1 memory/pids/cpuacct (run as root)")
    else:
        monkeypatch.setenv(SWITCH, "off")
    return str(request.param)


@pytest.fixture
def small(tmp_path: Path, backend: str, mechanism: str) -> Iterator[Cleanroom]:
    # RLIMIT_NPROC does not bind uid 0, so as root the fallback cannot limit processes.
    policy = SMALL if mechanism == "cgroups" or os.geteuid() else _NO_NPROC
    per_process = mechanism == "rlimits"
    with Cleanroom(
        tmp_path / "ws", policy=policy, backend=backend, per_process_limits=per_process
    ) as room:
        yield room


def test_memory_hog_is_stopped_and_reported(small: Cleanroom, mechanism: str) -> None:
    result = small.run(["python3", "-c", "x = []\nwhile True: x.append(bytearray(1 << 20))"])
    assert result.exit_code != 0
    if mechanism == "cgroups":
        assert result.limit_exceeded == "memory"
        assert result.peak_memory is not None
        assert result.peak_memory <= SMALL.memory_limit
    else:
        # RLIMIT_DATA: the allocation fails inside the program, which reports it itself.
        assert "MemoryError" in result.stderr


def test_fork_bomb_is_stopped_and_reported(tmp_path: Path, backend: str, mechanism: str) -> None:
    if mechanism == "rlimits" and os.geteuid() == 0:
        # RLIMIT_NPROC does not bind uid 0: refusing beats running without a process limit.
        with pytest.raises(BackendUnavailableError, match="RLIMIT_NPROC does not bind uid 0"):
            Cleanroom(tmp_path, policy=SMALL, backend=backend, per_process_limits=True)
        return
    per_process = mechanism == "rlimits"
    with Cleanroom(
        tmp_path / "ws", policy=SMALL, backend=backend, per_process_limits=per_process
    ) as room:
        result = room.run("bomb() { bomb | bomb & }; bomb; sleep 20", timeout=10)
    if mechanism == "cgroups":
        result.assert_limit_exceeded("processes")
        assert result.exit_code == 137
    else:
        # RLIMIT_NPROC (set inside the user namespace) makes fork fail, so the bomb cannot
        # grow, but nothing tells the engine: the wall-clock timeout ends it.
        result.assert_limit_exceeded("timeout")
        assert "fork" in result.stderr.lower()


def test_disk_filler_is_stopped_by_file_size(small: Cleanroom) -> None:
    result = small.run("cat /dev/zero > big")
    result.assert_limit_exceeded("file_size")
    assert result.exit_code == 128 + 25  # SIGXFSZ
    assert small.workspace.path("big").stat().st_size <= SMALL.max_file_size + 512


def test_file_size_reported_for_programs_ignoring_sigxfsz(small: Cleanroom) -> None:
    # Python ignores SIGXFSZ, so it gets EFBIG; the file stopped at the limit gives it away.
    result = small.run(["python3", "-c", "f = open('big', 'wb')\nwhile True: f.write(b'x' * 4096)"])
    assert "File too large" in result.stderr
    result.assert_limit_exceeded("file_size")


def test_private_tmp_is_bounded_too(small: Cleanroom) -> None:
    result = small.run("cat /dev/zero > /tmp/big")
    assert result.exit_code != 0
    assert result.limit_exceeded == "file_size"


def test_endless_cpu_loop_is_stopped_by_cpu_time(small: Cleanroom) -> None:
    result = small.run(["python3", "-c", "while True: pass"])
    result.assert_limit_exceeded("cpu_time")
    assert not result.timed_out


def test_cpu_time_of_the_whole_tree_is_limited(tmp_path: Path, backend: str) -> None:
    # Four busy children, none of which reaches the per-process limit on its own: only the
    # cgroup's cpuacct sees the tree (rlimits are per process, as documented).
    require(parents() is not None, "writable cgroup v1 memory/pids/cpuacct (run as root)")
    with Cleanroom(tmp_path, policy=SMALL.replace(cpu_time_limit=2.0), backend=backend) as room:
        result = room.run("for i in 1 2 3 4; do (while :; do :; done) & done; wait")
    result.assert_limit_exceeded("cpu_time")
    assert result.exit_code == 137


def test_open_files_limit_is_enforced(small: Cleanroom) -> None:
    result = small.run(["python3", "-c", "fs = [open('/dev/null') for _ in range(200)]"])
    assert result.exit_code == 1
    assert "Too many open files" in result.stderr


def test_timeout_kills_and_reports(small: Cleanroom) -> None:
    result = small.run("sleep 30", timeout=0.5)
    assert result.timed_out
    result.assert_limit_exceeded("timeout")
    assert result.exit_code == 137


def test_measurements_of_a_normal_command(small: Cleanroom, backend: str, mechanism: str) -> None:
    result = small.run(["python3", "-c", "b = bytearray(40 << 20); sum(range(10**6))"])
    result.assert_success()
    if mechanism == "rlimits" and backend == "bwrap":
        # Without cgroups only the sandbox tool's rusage could tell, and bubblewrap's never
        # holds the command's (its monitor does not reap the PID-namespace init): unmeasured,
        # not a number that would be the engine's or bubblewrap's own.
        assert (result.peak_memory, result.cpu_time) == (None, None)
        return
    assert result.peak_memory is not None
    assert result.peak_memory >= 40 * MiB
    assert result.cpu_time is not None
    assert result.cpu_time > 0


def test_per_process_limits_are_refused_unless_opted_in(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as switched:
        switched.setenv(SWITCH, "off")
        with pytest.raises(TreeLimitsError) as refused:
            Cleanroom(tmp_path / "a", policy=_NO_NPROC, backend=backend)
        message = str(refused.value)
        for part in ("memory_limit=100663296", "cpu_time_limit=1.0", "whole process tree",
                     "--cleanroom-per-process-limits", "cleanroom_per_process_limits",
                     "docs/platforms.md", "--cleanroom-backend=docker"):  # fmt: skip
            assert part in message
        assert not (tmp_path / "a").exists()  # refused before the workspace was made
        with Cleanroom(
            tmp_path / "b", policy=_NO_NPROC, backend=backend, per_process_limits=True
        ) as room:
            weak = room.run(["true"])
    weak.assert_success()
    assert weak.limits_enforcement == "rlimit"
    assert weak.policy_name == f"{_NO_NPROC.name}+per_process_limits"
    assert weak.policy_digest != _NO_NPROC.digest()
    assert weak.policy_digest == _NO_NPROC.replace(per_process_limits=True).digest()
    require(parents() is not None, "writable cgroup v1 memory/pids/cpuacct (run as root)")
    # With a cgroup the opt-in changes nothing: the limits hold for the tree, as declared.
    with Cleanroom(
        tmp_path / "c", policy=_NO_NPROC, backend=backend, per_process_limits=True
    ) as room:
        strong = room.run(["true"])
    assert strong.policy_name == _NO_NPROC.name
    assert strong.policy_digest == _NO_NPROC.digest()
    assert strong.limits_enforcement in ("cgroup1", "cgroup2")


def test_a_large_reservation_is_not_memory_use(small: Cleanroom) -> None:
    # Runtimes (the JVM, Go) reserve far more address space than the memory limit and commit
    # only what they use; the per-process fallback counts writable memory (RLIMIT_DATA), not
    # reservations (RLIMIT_AS), so they start.
    reserve = "import mmap; m = mmap.mmap(-1, 8 << 30, prot=0); print('reserved')"
    small.run(["python3", "-c", reserve]).assert_success().assert_stdout_contains("reserved")


def test_java_starts_under_locked(tmp_path: Path, backend: str, mechanism: str) -> None:
    java = shutil.which("java")
    require(java is not None, "a JVM ('java' on PATH: apt-get install default-jre-headless)")
    policy = Policy.level("locked") if mechanism == "cgroups" or os.geteuid() else None
    if policy is None:  # root without cgroups: no process limit can be had
        policy = Policy.level("locked").replace(max_processes=None)
    per_process = mechanism == "rlimits"
    with Cleanroom(
        tmp_path, policy=policy, backend=backend, per_process_limits=per_process
    ) as room:
        result = room.run(["java", "-version"])
    result.assert_success()
    assert "OpenJDK" in result.stderr or "version" in result.stderr
