"""A CPU quota (``Policy.cpu_quota``) is either enforced for the whole process tree or refused
with ``BackendUnavailableError`` naming it: never accepted and ignored. The CPU the tree got is
the backend's own measurement (``RunResult.cpu_time``), which a quota needs to be checked."""

from __future__ import annotations

from pathlib import Path

from pytest_cleanroom import Cleanroom, Policy, RunResult
from pytest_cleanroom.errors import BackendUnavailableError

QUOTA = 0.05  # CPUs: 5 ms of CPU time per 100 ms period, however busy the machine is
#: Two busy shells (the quota binds the whole tree, not each process), ended by the timeout.
BUSY_TREE = ["/bin/sh", "-c", "sh -c 'while :; do :; done' & while :; do :; done"]


def run_busy_tree(tmp_path: Path, backend: str) -> RunResult:
    """The busy tree under ``standard`` with :data:`QUOTA` and a 3 s timeout; raises
    ``BackendUnavailableError`` where ``backend`` refuses the quota."""
    policy = Policy.level("standard").replace(cpu_quota=QUOTA, timeout=3.0)
    with Cleanroom(tmp_path / "quota", policy=policy, backend=backend) as room:
        return room.run(BUSY_TREE)


def assert_within_quota(result: RunResult) -> None:
    """The tree ran until the timeout and got no more CPU than the quota allows, with a margin
    of as much again plus 100 ms: the kernel checks the quota at scheduler ticks, so a busy tree
    may overrun a period by up to a tick on each CPU (seen in a virtual machine under
    emulation); without a quota the same tree takes up to all the CPUs for the whole time."""
    assert result.timed_out, result.describe()
    assert result.cpu_time is not None, "a backend enforcing a CPU quota must measure CPU time"
    assert 0 < result.cpu_time <= QUOTA * result.duration * 2 + 0.1, (
        f"{result.cpu_time:.3f} CPU seconds in {result.duration:.2f} s under cpu_quota={QUOTA}"
    )
    assert "cpu_quota" in result.policy_name


def test_a_cpu_quota_is_enforced_or_refused(tmp_path: Path, conformance_backend: str) -> None:
    refusal: BackendUnavailableError | None = None
    try:
        result = run_busy_tree(tmp_path, conformance_backend)
    except BackendUnavailableError as exc:
        refusal = exc
    if refusal is not None:
        assert "cpu_quota" in str(refusal), f"the refusal does not name the quota: {refusal}"
        return
    assert_within_quota(result)
