"""An output flood cannot grow the host: past ``max_output`` a stream is cut and the command ends.

The command tries to print far more than its level's ``max_output``; the pytest process's peak
memory (``VmHWM``, reset through ``/proc/self/clear_refs`` before the run) must grow by about two
copies of the limit at most (what is kept, and the bytes object made of it), never by what the
command printed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy, RunResult
from pytest_cleanroom.policy import GiB, MiB
from pytest_cleanroom.policy_levels import LEVELS

#: Besides the kept output, what a run may add to the host process (result objects, the docker
#: client's buffers, allocator slack).
SLACK = 64 * MiB


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} in /proc/self/status")


def run_measured(room: Cleanroom, cmd: str) -> tuple[RunResult, int]:
    """Run ``cmd``; return its result and how far the host process's peak memory rose."""
    room.run(["true"]).assert_success()  # connections, launchers and caches made beforehand
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM (the peak resident set) to the current size
    before = _status("VmRSS:")
    result = room.run(cmd)
    return result, _status("VmHWM:") - before


@pytest.mark.parametrize(
    ("level", "stream"), [*((level, "stdout") for level in LEVELS), ("locked", "stderr")]
)
def test_output_flood_is_cut_and_host_memory_stays_bounded(
    tmp_path: Path, conformance_backend: str, level: str, stream: str
) -> None:
    policy = Policy.level(level)
    limit = policy.max_output
    assert limit is not None, f"{level} must bound the output it keeps on the host"
    flood = max(1 * GiB, 4 * limit)
    redirect = "" if stream == "stdout" else " 1>&2"
    with Cleanroom(tmp_path / "ws", policy=policy, backend=conformance_backend) as room:
        result, growth = run_measured(room, f"head -c {flood} /dev/zero{redirect}")
    result.assert_limit_exceeded("output")
    kept = result.stdout_bytes if stream == "stdout" else result.stderr_bytes
    assert kept[:limit] == b"\0" * limit
    assert len(result.stdout_bytes) <= limit
    assert b"max_output" in result.stderr_bytes[-200:]
    assert growth <= 2 * limit + SLACK, (
        f"the host process grew by {growth >> 20} MiB for a {limit >> 20} MiB output limit"
    )


def test_output_up_to_the_limit_is_kept_whole(tmp_path: Path, conformance_backend: str) -> None:
    policy = Policy.level("locked").replace(max_output=1 * MiB)
    with Cleanroom(tmp_path / "ws", policy=policy, backend=conformance_backend) as room:
        exact = room.run(f"head -c {1 * MiB} /dev/zero; head -c {1 * MiB} /dev/zero >&2")
        over = room.run(f"head -c {1 * MiB + 1} /dev/zero")
    exact.assert_success()
    assert len(exact.stdout_bytes) == len(exact.stderr_bytes) == 1 * MiB
    over.assert_limit_exceeded("output").assert_stderr_contains("max_output=1048576")
    assert over.stdout_bytes == b"\0" * MiB
