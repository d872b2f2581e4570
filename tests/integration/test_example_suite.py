"""The README's main job: the example suite passes under ``--cleanroom-policy=locked`` on the
embedded default, with the one warning it shows on purpose; as an unprivileged user without a
cgroup it is refused at once with the fix, or, opted in to per-process limits, says so in every
record."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.integration.engine.test_unprivileged import NOBODY, as_nobody

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_TESTS = 17
#: The examples that only a cgroup can pass: a whole tree's processes and memory, and the
#: policy's name (per-process limits name it ``locked+per_process_limits``).
NEED_A_CGROUP = {
    "test_policy_marker.py::test_a_process_limit_stops_a_fork_bomb",
    "test_policy_marker.py::test_a_memory_limit_stops_a_memory_hog",
    "test_policy_marker.py::test_the_marker_sets_the_policy_every_command_gets",
}
MAIN_JOB = ["examples", "--cleanroom-policy=locked", "-p", "no:cacheprovider", "-p", "no:xdist"]


def run_main_job(*options: str) -> subprocess.CompletedProcess[str]:
    """The README's main job with pytest ``options`` added; it must pass as it does here."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *MAIN_JOB, "-q", *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " failed" not in done.stdout
    assert "1 warning" in done.stdout  # the refused weaker marker of test_policy_marker.py
    return done


def test_the_example_suite_passes_under_locked() -> None:
    run_main_job()


@pytest.fixture
def examples_for_nobody() -> Iterator[Path]:
    """A copy of the example suite that uid 65534 owns (the checkout may be private to root)."""
    top = Path(tempfile.mkdtemp(prefix="cleanroom-examples-"))
    top.chmod(0o755)
    shutil.copytree(REPO / "examples", top / "examples")
    for path in [top / "examples", *(top / "examples").rglob("*")]:
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    yield top / "examples"
    shutil.rmtree(top)


def test_as_an_unprivileged_user_without_a_cgroup_it_is_refused_or_honest(
    examples_for_nobody: Path,
) -> None:
    # cgroup v1 gives an unprivileged user no cgroup: the README's main job must either stop
    # before running anything, naming the fix, or (opted in) say in every record that its
    # limits were held per process, never claiming what root's cgroups hold.
    require(
        not Path("/sys/fs/cgroup/cgroup.controllers").exists(),
        "cgroup v1 (on cgroup v2 the VM tests cover this user)",
    )
    suite = examples_for_nobody
    job = ["-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q",
           "--rootdir", str(suite), "--basetemp", str(suite / "tmp"),
           "--cleanroom-policy=locked", "--cleanroom-backend=local",
           f"--cleanroom-report={suite / 'report.json'}", str(suite)]  # fmt: skip
    refused = as_nobody(*job)
    assert refused.returncode == 1, refused.stdout[-3000:] + refused.stderr
    assert " passed" not in refused.stdout  # every test with a sandbox stops at its set-up
    errors = refused.stdout.split(" ERROR at setup of ")[1:]
    assert len(errors) == EXAMPLE_TESTS, refused.stdout[-3000:]
    for error in errors:
        assert "accept per-process limits with --cleanroom-per-process-limits" in error, error
    assert json.loads((suite / "report.json").read_text())["commands"] == []

    honest = as_nobody(*job, "--cleanroom-per-process-limits")
    commands = json.loads((suite / "report.json").read_text())["commands"]
    assert {c["limits_enforcement"] for c in commands} == {"rlimit"}
    assert all(c["policy"].endswith("+per_process_limits") for c in commands), commands
    assert not {c["limit_exceeded"] for c in commands} & {"memory", "processes"}
    # What fails is what only a cgroup can show: a tree's memory or processes, and the
    # policy's name, which says per_process_limits.
    failed = {
        line.split()[1].rsplit("/", 1)[-1]
        for line in honest.stdout.splitlines()
        if line.startswith("FAILED ")
    }
    assert failed <= NEED_A_CGROUP, honest.stdout[-3000:]
    assert f"{EXAMPLE_TESTS - len(failed)} passed" in honest.stdout, honest.stdout[-3000:]
