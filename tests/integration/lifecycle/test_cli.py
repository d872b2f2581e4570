"""``ggen lifecycle`` as users run it: real processes, real signals, real locks."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ggen_lifecycle import readiness as rd
from tests.unit.lifecycle.helpers import alive, write_project

from .conftest import GGEN, ggen, start, wait_for

pytestmark = pytest.mark.integration


def test_sigint_stops_every_child_and_records_the_interruption(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        """
        [lifecycle.serve]
        command = "sh -c 'sleep 300 & echo $! > grandchild.pid; wait' & echo $! > child.pid; wait"
        """,
        workspaces=["a", "b"],
    )
    proc = start(root, "run", "serve", "-j", "2")
    try:
        pid_files = [root / ws / name for ws in "ab" for name in ("child.pid", "grandchild.pid")]
        for pid_file in pid_files:
            wait_for(pid_file, proc, whole_line=True)
        pids = [int(pid_file.read_text()) for pid_file in pid_files]
        assert all(alive(pid) for pid in pids)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()  # a failed assertion above must not leave the run behind
        proc.wait()
    assert proc.returncode == 130, err
    survivors = [pid for pid in pids if alive(pid)]
    assert survivors == [], f"processes survived Ctrl-C: {survivors}"
    assert "interrupted" in out
    state = json.loads((root / ".ggen" / "state.json").read_text())
    assert state["runs"][-1]["result"] == "interrupted"
    assert {t["result"] for t in state["tasks"]} == {"interrupted"}


def test_second_run_refuses_then_waits_for_the_lock(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        """
        [lifecycle.build]
        command = "touch started; until [ -f release ]; do sleep 0.02; done"
        """,
    )
    first = start(root, "run", "build")
    wait_for(root / "started", first)
    refused = ggen(root, "run", "build")
    assert refused.returncode == 3
    assert "another run of this project is in progress" in refused.stderr
    assert f"pid {first.pid}" in refused.stderr
    assert "--wait" in refused.stderr
    waiting = start(root, "run", "build", "--wait", "60", "--json")
    time.sleep(0.3)  # let it block on the lock; the assertion below does not depend on timing
    assert waiting.poll() is None
    (root / "release").touch()
    assert first.wait(timeout=60) == 0
    out, err = waiting.communicate(timeout=60)
    assert waiting.returncode == 0, err
    assert json.loads(out)["status"] == "success"
    runs = json.loads((root / ".ggen" / "state.json").read_text())["runs"]
    assert [r["result"] for r in runs] == ["success", "success"]


def test_a_100_mb_log_is_streamed_not_held_in_memory(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        """
        [lifecycle.noisy]
        command = "yes 'a line of log output, like logs do' | head -c 104857600; echo last-line"
        """,
    )
    # The runner's own peak, read in the ggen process as it ends: VmHWM belongs to the address
    # space made at exec. (ru_maxrss would not do: Linux carries it across execve, so a child of
    # a large pytest worker reports the worker's peak.)
    measure = (
        "import runpy, sys\n"
        "sys.argv = ['ggen', *sys.argv[1:]]\n"
        "try:\n"
        "    runpy.run_module('ggen_cli', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "else:\n"
        "    code = 0\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(hwm.split()[1], file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    args = ["lifecycle", "-C", str(root), "run", "noisy", "--json", "-q"]
    proc = subprocess.run(
        [sys.executable, "-c", measure, *args],
        capture_output=True,
        check=False,
    )
    summary = json.loads(proc.stdout)
    assert summary["status"] == "success"
    log = Path(summary["tasks"][0]["log"])
    assert log.stat().st_size > 100 * 1024 * 1024
    with log.open("rb") as handle:
        handle.seek(-40, 2)
        assert handle.read().endswith(b"last-line\n")
    peak_mb = int(proc.stderr.decode().split()[-1]) / 1024
    assert peak_mb < 100, f"the runner held the log in memory: peak RSS {peak_mb:.0f} MB"


def test_json_summary_and_table(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        """
        [workspace.a]
        path = "a"
        [lifecycle.build]
        command = "echo hi > out.txt"
        inputs = ["*.src"]
        outputs = ["out.txt"]
        """,
        {"a/x.src": "1"},
    )
    first = ggen(root, "run", "build", "--json")
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    (task,) = data["tasks"]
    assert task["id"] == "build:a"
    assert task["cache"] == "miss"
    assert task["started_at"] <= task["ended_at"]
    assert data["span"] == pytest.approx(task["ended_at"] - task["started_at"], abs=1e-5)
    second = ggen(root, "run", "build")
    assert second.returncode == 0
    assert re.search(r"a:build\s+cached\s+[\d.]+s\s+hit", second.stdout)


def test_failure_exit_code_and_tail(tmp_path: Path) -> None:
    root = write_project(tmp_path, '[lifecycle.test]\ncommand = "echo boom-detail; exit 5"\n')
    result = ggen(root, "run", "test")
    assert result.returncode == 1
    assert "FAILED test: `echo boom-detail; exit 5` exited with code 5" in result.stderr
    assert "boom-detail" in result.stderr
    as_json = json.loads(ggen(root, "run", "test", "--json").stdout)
    assert as_json["tasks"][0]["error_type"] == "TaskFailedError"
    assert as_json["tasks"][0]["exit_code"] == 5


def test_malformed_make_toml_exit_code_and_position(tmp_path: Path) -> None:
    (tmp_path / "make.toml").write_text('[lifecycle.build]\ncommand = "x\n')
    result = ggen(tmp_path, "run", "build")
    assert result.returncode == 2
    assert f"{tmp_path / 'make.toml'}:2:" in result.stderr
    as_json = json.loads(ggen(tmp_path, "list", "--json").stdout)
    assert as_json["error"]["line"] == 2
    assert as_json["error"]["type"] == "ConfigError"


def test_unknown_phase_and_workspace_suggestions(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        '[workspace.web]\npath = "web"\n[lifecycle.build]\ncommand = "true"\n',
        {"web/.keep": ""},
    )
    result = ggen(root, "run", "biuld")
    assert result.returncode == 2
    assert "unknown phase 'biuld'; did you mean 'build'?" in result.stderr
    assert str(root / "make.toml") in result.stderr
    result = ggen(root, "run", "build", "--workspace", "wbe")
    assert "did you mean 'web'?" in result.stderr


def test_list_show_graph_dry_run_clean(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        """
        [lifecycle.build]
        description = "compile"
        command = "echo built > out"
        inputs = ["src/*"]
        outputs = ["out"]
        [lifecycle.test]
        command = "true"
        depends_on = ["build"]
        """,
        {"lib/src/a": "1", "app/src/b": "2"},
        workspaces={"lib": [], "app": ["lib"]},
    )
    listed = ggen(root, "list")
    assert re.search(r"build +compile +\[lib, app\]", listed.stdout)
    assert re.search(r"deploy +\(standard, not declared\)", listed.stdout)
    shown = json.loads(ggen(root, "show", "build", "--json").stdout)
    assert [t["workspace"] for t in shown["targets"]] == ["lib", "app"]
    assert shown["targets"][0]["commands"] == ["echo built > out"]
    mermaid = ggen(root, "graph", "test").stdout
    assert "build_lib --> build_app" in mermaid
    assert "build_app --> test_app" in mermaid
    dot = ggen(root, "graph", "--format", "dot").stdout
    assert '"build:lib" -> "build:app";' in dot
    plan = json.loads(ggen(root, "run", "test", "--dry-run", "--json").stdout)["plan"]
    order = [s["id"] for s in plan]
    assert sorted(order) == ["build:app", "build:lib", "test:app", "test:lib"]
    assert order.index("build:lib") < order.index("build:app") < order.index("test:app")
    assert order.index("build:lib") < order.index("test:lib")
    assert {s["id"]: s["cache"] for s in plan}["build:lib"] == "miss"
    assert not (root / "lib" / "out").exists()
    assert ggen(root, "run", "build").returncode == 0
    plan = json.loads(ggen(root, "run", "test", "--dry-run", "--json").stdout)["plan"]
    caches = {s["id"]: s["cache"] for s in plan}
    assert caches == {"build:lib": "hit", "build:app": "hit", "test:lib": "off", "test:app": "off"}
    cleaned = json.loads(ggen(root, "clean", "--json").stdout)
    assert cleaned["removed"]["cache"]["entries"] == 2
    history = json.loads(ggen(root, "state", "--json").stdout)
    assert history["runs"][-1]["result"] == "success"
    assert (root / ".ggen" / "validated").is_dir()
    # The memo skips files changed in the last two seconds (HashMemo.RECENT_NS), so on a fast
    # machine this run may not have written it yet: put one there for clean --all to remove.
    memo = root / ".ggen" / "hashes.json"
    if not memo.exists():
        memo.write_text("{}")
    assert ggen(root, "clean", "--all").returncode == 0
    assert not (root / ".ggen" / "state.json").exists()
    assert not (root / ".ggen" / "logs").exists()
    assert not (root / ".ggen" / "validated").exists()
    assert not (root / ".ggen" / "hashes.json").exists()


def test_readiness_commands(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        """
        [lifecycle.build]
        command = "true"
        [readiness]
        patterns = ["TODO", "XXX"]
        [readiness.thresholds.production]
        min_score = 30
        max_placeholders = 0
        critical_complete = false
        """,
        {"src/app.py": "print(1)  # TODO remove\n"},
    )
    report = json.loads(ggen(root, "readiness", "--detailed", "--json").stdout)
    assert report["score"] == 0.0
    assert len(report["requirements"]) > 5
    assert "tests" in {b["id"] for b in report["blockers"]}
    refused = ggen(root, "readiness-update", "tests", "complete")
    assert refused.returncode == 1
    assert "cannot go from 'missing' to 'complete'" in refused.stderr
    updated = ggen(root, "readiness-update", "tests", "needs-review", "--json")
    assert json.loads(updated.stdout) == {"id": "tests", "from": "missing", "to": "needs-review"}
    for rid in ("tests", "error-handling", "security-review", "secrets", "no-placeholders"):
        if rid != "tests":
            rd.update_status(root, rid, "needs-review")
        rd.update_status(root, rid, "complete")
    placeholders = json.loads(ggen(root, "placeholders", "--json").stdout)
    assert placeholders["placeholders"][0]["file"] == "src/app.py"
    verdict = ggen(root, "validate", "--env", "production")
    assert verdict.returncode == 1
    assert "1 placeholders found, at most 0 allowed (src/app.py:1)" in verdict.stdout
    (root / "src" / "app.py").write_text("print(1)\n")
    verdict = ggen(root, "validate", "--env", "production", "--json")
    assert verdict.returncode == 0, verdict.stdout
    assert json.loads(verdict.stdout)["ready"] is True
    typo = ggen(root, "validate", "--env", "prodution")
    assert typo.returncode == 2
    assert "did you mean 'production'?" in typo.stderr


def test_live_progress_on_a_terminal_plain_lines_otherwise(tmp_path: Path) -> None:
    import pty

    root = write_project(
        tmp_path,
        """
        [lifecycle.build]
        command = "echo compiling; sleep 0.5; echo done"
        """,
    )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*GGEN, "-C", str(root), "run", "build"],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=dict(os.environ, TERM="xterm"),
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    screen = b"".join(chunks).decode()
    assert "\r\x1b[2K" in screen  # the status line is redrawn in place
    assert re.search(r"\[0/1\] \S+ running: build", screen)
    assert "build |\x1b[0m compiling" in screen
    plain = ggen(root, "run", "build")
    assert "\x1b[" not in plain.stdout
    assert "build | compiling" in plain.stdout


def test_sigint_during_a_before_all_hook(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        """
        [lifecycle.build]
        command = "touch built"
        [hooks]
        before_all = ["sh -c 'sleep 300 & echo $! > hook.pid; wait'"]
        """,
    )
    proc = start(root, "run", "build")
    wait_for(root / "hook.pid", proc, whole_line=True)
    pid = int((root / "hook.pid").read_text())
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert not alive(pid)
    assert not (root / "built").exists()


def test_command_lines_the_fast_parser_leaves_to_click_behave_as_before(tmp_path: Path) -> None:
    root = write_project(tmp_path, '[lifecycle.build]\ncommand = "echo built"\n')
    bad = ggen(root, "run", "build", "-j", "0")
    assert bad.returncode == 2
    assert "Invalid value for '-j' / '--jobs'" in bad.stderr
    helped = ggen(root, "run", "--help")
    assert helped.returncode == 0
    assert "--keep-going" in helped.stdout
    fast = ggen(root, "run", "build", "-j2")
    assert fast.returncode == 0, fast.stderr
    assert "build | built" in fast.stdout
    slow = ggen(root, "run", "build", "-qj2")  # combined short options: parsed by click
    assert slow.returncode == 0, slow.stderr
    assert "build | built" not in slow.stdout  # -q was understood
    assert "success: 1 success" in slow.stdout


HOOKED = """
[lifecycle.lint]
command = "echo lint"
[lifecycle.build]
command = "echo build"
[lifecycle.test]
command = "echo test"
depends_on = ["build"]
[hooks]
before_all = ["echo start"]
before_build = ["lint", "echo pre-build"]
after_build = "echo post-build"
before_test = "echo pre-test"
after_test = "echo post-test"
after_all = "echo done"
on_error = "echo failed"
"""


def test_dry_run_lists_the_hooks_the_run_executes(tmp_path: Path) -> None:
    root = write_project(tmp_path, HOOKED)
    plan = json.loads(ggen(root, "run", "test", "--dry-run", "--json").stdout)["plan"]
    order = [step["id"] for step in plan]
    assert order[0] == "hook:before_all"
    assert order[-2:] == ["hook:after_all", "hook:on_error"]
    assert plan[-1]["when"] == "on failure"
    assert all("when" not in step for step in plan[:-1])
    at = order.index
    assert at("hook:before_build") < at("lint") < at("build") < at("hook:after_build")
    assert at("hook:before_test") < at("test") < at("hook:after_test") < at("hook:after_all")
    before_build = plan[at("hook:before_build")]
    assert before_build["runs"] == [
        {"phase": "lint", "steps": ["lint"]},
        {"command": "echo pre-build"},
    ]
    assert not (root / ".ggen" / "state.json").exists()  # nothing ran

    ran = json.loads(ggen(root, "run", "test", "--json").stdout)
    assert ran["status"] == "success"
    # the dry run listed exactly what the run executed, plus on_error for a failure
    assert sorted(t["id"] for t in ran["tasks"]) == sorted(order[:-1])

    text = ggen(root, "run", "test", "--dry-run").stdout.splitlines()
    assert text[0] == "  1. before_all"
    assert "       > phase lint (step 3)" in text
    assert text[-2:] == [" 10. on_error  (only on failure)", "       $ echo failed"]


def test_dry_run_of_a_hook_phase_already_planned(tmp_path: Path) -> None:
    root = write_project(
        tmp_path,
        """
        [lifecycle.build]
        command = "echo build"
        [hooks]
        after_all = "build"
        """,
    )
    text = ggen(root, "run", "build", "--dry-run").stdout
    assert text.splitlines() == [
        "  1. build  [cache off]",
        "       $ echo build",
        "  2. after_all",
        "       > phase build (already planned above)",
    ]
