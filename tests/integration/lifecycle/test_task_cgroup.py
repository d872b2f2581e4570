"""A task's processes end with it, even those that left its process group: every task command
runs in a cgroup of its own, and a timeout, a failed sibling, Ctrl-C, the end of the command or a
SIGKILL of the runner kills the whole cgroup. Without cgroups the run says it fell back to the
process group."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from pytest_cleanroom import cgroups
from tests.conftest import require
from tests.unit.lifecycle.helpers import alive, write_project

from .conftest import ggen, start, wait_for
from .test_killed_run import gone_within

pytestmark = pytest.mark.integration

#: A grandchild in a session of its own (``setsid --fork``: a double fork), its output not on
#: the task's pipe, so that only a kill of the task's cgroup can reach it.
ESCAPE = (
    "setsid --fork sh -c 'cat /proc/$$/stat > escaped.stat; echo $$ > escaped.pid; exec sleep 300'"
    " </dev/null >/dev/null 2>&1; while [ ! -s escaped.pid ]; do sleep 0.02; done;"
    " cat /proc/$$/stat > shell.stat; echo $$ > shell.pid"
)


@pytest.fixture
def with_cgroups() -> None:
    require(cgroups.parents() is not None, f"usable cgroups (as root): {cgroups.why_unavailable()}")


def group_and_session(stat: Path) -> list[str]:
    """The process group and session in a saved ``/proc/PID/stat``."""
    return stat.read_text().rsplit(") ", 1)[1].split()[2:4]


def escaped(root: Path) -> int:
    """The pid of the grandchild, checked to have been outside the task shell's process group
    and session (so that killing the group could not reach it)."""
    wait_until_written = [root / "escaped.pid", root / "shell.pid"]
    assert all(p.read_text().endswith("\n") for p in wait_until_written)
    theirs = group_and_session(root / "escaped.stat")
    shells = group_and_session(root / "shell.stat")
    assert theirs[0] != shells[0]
    assert theirs[1] != shells[1]
    return int((root / "escaped.pid").read_text())


def run_json(root: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    done = ggen(root, "run", *args, "--json", "-j", "2", env=env)
    summary: dict[str, object] = json.loads(done.stdout)
    return summary


@pytest.mark.usefixtures("with_cgroups")
def test_a_timeout_kills_what_left_the_process_group(tmp_path: Path) -> None:
    root = write_project(
        tmp_path, f'[lifecycle.serve]\ncommand = "{ESCAPE}; sleep 300"\ntimeout = 5\n'
    )
    summary = run_json(root, "serve")
    (task,) = summary["tasks"]  # type: ignore[misc]
    assert "timed out" in task["error"]
    assert summary["task_cleanup"] == "cgroup"
    assert gone_within([escaped(root)]) == []


@pytest.mark.usefixtures("with_cgroups")
def test_a_failed_sibling_stops_the_task_with_its_escaped_grandchild(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        f'[lifecycle.serve]\ncommand = "{ESCAPE}; sleep 300"\n'
        '[lifecycle.broken]\ncommand = "while [ ! -s shell.pid ]; do sleep 0.05; done; exit 3"\n'
        '[lifecycle.all]\ndepends_on = ["serve", "broken"]\n',
    )
    summary = run_json(root, "all")
    statuses = {t["id"]: t["status"] for t in summary["tasks"]}  # type: ignore[attr-defined]
    assert statuses["broken"] == "failed"
    assert statuses["serve"] == "cancelled"
    assert gone_within([escaped(root)]) == []


@pytest.mark.usefixtures("with_cgroups")
def test_what_a_finished_command_left_running_ends_with_it(tmp_path: Path) -> None:
    root = write_project(tmp_path, f'[lifecycle.daemon]\ncommand = "{ESCAPE}"\n')
    summary = run_json(root, "daemon")
    assert summary["status"] == "success"
    assert gone_within([escaped(root)]) == []


@pytest.mark.usefixtures("with_cgroups")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_the_runner_stopped_takes_escaped_processes_with_it(
    tmp_path: Path, signum: signal.Signals
) -> None:
    root = write_project(tmp_path, f'[lifecycle.serve]\ncommand = "{ESCAPE}; sleep 300"\n')
    proc = start(root, "run", "serve")
    try:
        wait_for(root / "shell.pid", proc, whole_line=True)
        wait_for(root / "escaped.pid", proc, whole_line=True)
        pid = escaped(root)
        assert alive(pid)
        proc.send_signal(signum)
        proc.communicate(timeout=60)
        assert proc.returncode == (130 if signum == signal.SIGINT else -signal.SIGKILL)
        assert gone_within([pid]) == []
    finally:
        if proc.poll() is None:
            proc.kill()


def test_without_cgroups_the_run_says_it_fell_back_to_process_groups(tmp_path: Path) -> None:
    root = write_project(tmp_path, '[lifecycle.build]\ncommand = "true"\ninputs = ["make.toml"]\n')
    env = dict(os.environ, CLEANROOM_CGROUPS="off")
    summary = run_json(root, "build", env=env)
    assert summary["status"] == "success"
    assert summary["task_cleanup"] == "process group: disabled by CLEANROOM_CGROUPS=off"
    assert run_json(root, "build", env=env)["task_cleanup"] is None  # a hit runs no command


@pytest.mark.usefixtures("with_cgroups")
def test_a_run_leaves_no_cgroup_behind(tmp_path: Path) -> None:
    found = cgroups.parents()
    assert found is not None
    root = write_project(tmp_path, '[lifecycle.build]\ncommand = "true; true"\n')
    proc = start(root, "run", "build", "--json")
    out, _ = proc.communicate(timeout=120)
    assert json.loads(out)["task_cleanup"] == "cgroup"
    left = [
        name for parent in found.values() for name in os.listdir(parent)
        if name.startswith(f"{proc.pid}-")
    ]  # fmt: skip
    assert left == []


@pytest.mark.usefixtures("with_cgroups")
def test_a_late_kill_of_a_finished_command_never_reaches_the_next_one(tmp_path: Path) -> None:
    """A finished command's group is reused by the next command; a kill still running for the
    first one (a grace period, a cancel) must not reach the second (seen as a task 'killed by
    signal 9' before its timeout)."""
    import threading
    import time

    from ggen_lifecycle.process import CommandTree, ProcessTable, run_shell

    table = ProcessTable()
    trees: list[CommandTree] = []

    def run(command: str) -> int:
        with open(tmp_path / "log", "ab") as log:
            outcome = run_shell(
                command,
                cwd=tmp_path,
                env={"PATH": os.environ["PATH"]},
                log=log,
                on_line=lambda _: None,
                table=table,
                cancelled=threading.Event(),
            )
        return outcome.exit_code

    real_add = table.add
    table.add = lambda tree: (trees.append(tree), real_add(tree))[1]  # type: ignore[method-assign]
    assert run("true") == 0
    first = trees[0]
    cgroups.flush()  # its group is back in the pool for the next command
    second: list[int] = []
    runner = threading.Thread(target=lambda: second.append(run("echo $$ > pid; sleep 2")))
    runner.start()
    deadline = time.monotonic() + 60
    while not (tmp_path / "pid").exists() or not (tmp_path / "pid").read_text().endswith("\n"):
        assert time.monotonic() < deadline, "the second command never started"
        time.sleep(0.02)
    first.kill_now()
    first.kill(grace=0.1)
    runner.join()
    assert second == [0], "the first command's late kill reached the second one"
