"""Under ``locked``, hogs are stopped by their limit and reported as such, odd commands and a
real Ctrl-C give a clear outcome, and nothing of a command is ever left on the machine.

Limits are tightened (still ``locked`` in every other field) so that each hog ends quickly. The
CPU budget is 2 s where commands run at native speed; a slower machine (software emulation, or a
loaded virtual machine, whose guest counts the time its CPU lost to the host as CPU time) gets a
budget scaled by what a reference command cost there just before, so that only the hog meant to
reach it does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy, RunResult
from pytest_cleanroom.errors import PolicyError
from pytest_cleanroom.policy import MiB
from pytest_cleanroom.testing.leftovers import (
    MARKER_VARIABLE,
    busy_cgroups_of_process,
    cgroups_of_process,
    processes_with_marker,
)

TIGHT = Policy.level("locked").replace(
    memory_limit=128 * MiB,
    max_processes=64,
    max_file_size=8 * MiB,
    cpu_time_limit=2.0,
    timeout=60.0,
)
#: The reference command whose CPU time scales the budget: Python's start, 15-30 ms natively.
REFERENCE = ["python3", "-c", "pass"]
#: The budget is at least this many times the reference's CPU time (natively below 2 s).
REFERENCE_FACTOR = 60
#: The wall-clock limit is at least this many times the budget (a tree may get less than a CPU).
TIMEOUT_FACTOR = 10


def tight_policy(tmp_path: Path, backend: str) -> Policy:
    """:data:`TIGHT` with the CPU budget this machine needs now: 2 s, or
    :data:`REFERENCE_FACTOR` times the CPU time of :data:`REFERENCE` where that is more. A backend
    that does not measure CPU time keeps 2 s."""
    untimed = TIGHT.replace(cpu_time_limit=None)
    with Cleanroom(tmp_path / "reference", policy=untimed, backend=backend) as room:
        reference = room.run(REFERENCE)
    reference.assert_success()
    budget = max(TIGHT.cpu_time_limit or 0.0, REFERENCE_FACTOR * (reference.cpu_time or 0.0))
    timeout = max(TIGHT.timeout or 0.0, TIMEOUT_FACTOR * budget)
    return TIGHT.replace(cpu_time_limit=round(budget, 1), timeout=round(timeout))


@pytest.fixture
def tight(tmp_path: Path, conformance_backend: str) -> Iterator[Cleanroom]:
    policy = tight_policy(tmp_path, conformance_backend)
    with Cleanroom(tmp_path / "ws", policy=policy, backend=conformance_backend) as room:
        yield room


def run_marked(room: Cleanroom, cmd: str | list[str], **kwargs: object) -> RunResult:
    """Run ``cmd`` with a marker every process inherits; assert none survives the run."""
    marker = uuid.uuid4().hex
    result = room.run(cmd, env={MARKER_VARIABLE: marker}, **kwargs)  # type: ignore[arg-type]
    assert processes_with_marker(marker) == [], f"left behind by {cmd!r}"
    return result


def test_fork_bomb_is_stopped_by_the_process_limit(tight: Cleanroom) -> None:
    result = run_marked(tight, "bomb() { bomb | bomb & }; bomb; sleep 30")
    result.assert_limit_exceeded("processes")
    assert not result.timed_out


def test_memory_hog_is_stopped_by_the_memory_limit(tight: Cleanroom) -> None:
    result = run_marked(tight, ["python3", "-c", "x = []\nwhile True: x.append(b'x' * (1 << 20))"])
    result.assert_limit_exceeded("memory")


def test_disk_filler_is_stopped_by_the_file_size_limit(tight: Cleanroom) -> None:
    result = run_marked(tight, "cat /dev/zero > filler")
    result.assert_limit_exceeded("file_size")
    assert tight.workspace.path("filler").stat().st_size <= TIGHT.max_file_size + 512  # type: ignore[operator]


def test_endless_loop_is_stopped_by_the_cpu_limit(tight: Cleanroom) -> None:
    result = run_marked(tight, ["python3", "-c", "while True: pass"])
    result.assert_limit_exceeded("cpu_time")
    assert not result.timed_out
    budget = tight.policy.cpu_time_limit
    assert budget is not None
    # The loop used its budget (where the backend measures it) before the kill, not a fraction of
    # it: the per-process RLIMIT_CPU backstop keeps its own count, seen 12 % below the cgroup's
    # on a loaded host, so only a kill far too early fails here.
    assert result.cpu_time is None or result.cpu_time >= budget / 2, result.describe()


def test_timeout_leaves_no_process_behind(tight: Cleanroom) -> None:
    result = run_marked(tight, "sleep 300 & (sleep 300 &); sleep 300", timeout=1)
    assert result.timed_out
    result.assert_limit_exceeded("timeout")
    tight.close()  # waits for the per-command cgroups to be gone
    assert busy_cgroups_of_process(os.getpid()) == []


def test_unknown_policy_name_is_a_clear_error(tmp_path: Path, conformance_backend: str) -> None:
    with pytest.raises(PolicyError, match=r"unknown cleanroom policy 'lockedd'.*locked"):
        Cleanroom(tmp_path / "ws", policy="lockedd", backend=conformance_backend)
    assert not (tmp_path / "ws").exists()


def test_missing_command_gives_exit_127_naming_it(tight: Cleanroom) -> None:
    result = run_marked(tight, ["definitely-not-a-program", "x"])
    assert result.exit_code == 127
    assert "definitely-not-a-program" in result.stderr


def test_non_utf8_output(tight: Cleanroom) -> None:
    result = run_marked(tight, ["python3", "-c", "import sys; sys.stdout.buffer.write(b'a\\xffb')"])
    assert result.stdout_bytes == b"a\xffb"
    assert result.stdout == "a\ufffdb"


def test_fifty_megabytes_of_output(tight: Cleanroom) -> None:
    # Within a max_output raised for it (locked keeps 16 MiB): all of it arrives intact.
    result = run_marked(
        tight,
        "head -c 52428800 /dev/zero | tr '\\0' x",
        policy=tight.policy.replace(max_output=64 * MiB),
    )
    result.assert_success()
    assert len(result.stdout_bytes) == 50 * 1024 * 1024
    assert result.stdout_bytes.count(b"x") == 50 * 1024 * 1024


#: Only a hung engine takes this long to start or end the command: a second natively, minutes
#: in an emulated machine on a loaded host (Python's start and the sandbox's set-up included).
HANG = 600

CTRL_C = f"""
import sys
from pytest_cleanroom import Cleanroom
with Cleanroom(sys.argv[1], policy="locked", backend=sys.argv[2]) as room:
    try:
        room.run("sleep 300 & sleep 300", env={{"{MARKER_VARIABLE}": sys.argv[3]}})
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(42)
print("not interrupted", flush=True)
"""


def test_ctrl_c_mid_run_kills_everything_and_raises(
    tmp_path: Path, conformance_backend: str
) -> None:
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C, str(tmp_path), conformance_backend, marker],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        end = time.monotonic() + HANG
        while len(processes_with_marker(marker)) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < end, "the sandboxed command never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=HANG)
    finally:
        proc.kill()
    assert proc.returncode == 42, err
    assert out == "interrupted\n"
    assert processes_with_marker(marker) == []
    assert cgroups_of_process(proc.pid) == []
