"""Running phases for real: parallelism, whole-line output, failures, cache, hooks, state."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from ggen_lifecycle.errors import CommandNotFoundError, OutputsMissingError
from tests.unit.lifecycle.helpers import alive

from .conftest import RunFn

pytestmark = pytest.mark.integration

THREE = ("a", "b", "c")


def test_parallel_output_is_whole_prefixed_lines(run_project: RunFn) -> None:
    ran = run_project(
        """
[lifecycle.build]
command = '''python3 -c "
import os, sys
w = os.environ['GGEN_WORKSPACE']
for i in range(3000):
    sys.stdout.write(f'{w} {i} ' + w * 300 + chr(10))
    if i % 500 == 0: sys.stdout.flush()
"'''
""",
        ["build"],
        workspaces=THREE,
        jobs=3,
    )
    assert ran.summary.status == "success"
    seen: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    for line in ran.output.splitlines():
        if " | " not in line:
            continue
        match = re.fullmatch(r"(\w):build \| (\w) (\d+) (\w+)", line)
        assert match, f"mixed or broken line: {line[:120]!r}"
        assert match.group(1) == match.group(2)
        assert match.group(4) == match.group(1) * 300
        seen[match.group(1)].append(int(match.group(3)))
    assert all(numbers == list(range(3000)) for numbers in seen.values())


def test_jobs_run_independent_tasks_at_the_same_time(run_project: RunFn) -> None:
    # each task waits until both have started: only possible if they run concurrently
    ran = run_project(
        """
[lifecycle.build]
command = "touch started; until [ -f ../a/started ] && [ -f ../b/started ]; do sleep 0.02; done"
timeout = 20
""",
        ["build"],
        workspaces=("a", "b"),
        jobs=2,
    )
    assert ran.statuses == {"build:a": "success", "build:b": "success"}


def test_fail_fast_kills_running_siblings_and_their_children(
    run_project: RunFn, tmp_path: Path
) -> None:
    ran = run_project(
        """
[lifecycle.build]
command = "sh -c 'sleep 60 & echo $! > child.pid; wait'; touch finished"
[lifecycle.build_a]
command = "true"
""",
        ["build"],
        {
            "a/make.toml": """
                [lifecycle.build]
                command = "until [ -f ../b/child.pid ]; do sleep 0.02; done; exit 3"
                timeout = 20
                """,
        },
        workspaces={"a": [], "b": [], "c": ["a"]},
        jobs=2,
    )
    proj = tmp_path / "proj"
    assert ran.summary.status == "failed"
    assert ran.summary.exit_code == 1
    assert ran.statuses["build:a"] == "failed"
    assert ran.statuses["build:b"] == "cancelled"
    assert ran.statuses["build:c"] == "skipped"
    child = int((proj / "b" / "child.pid").read_text())
    assert not alive(child), "the sibling's grandchild survived fail-fast"
    assert not (proj / "b" / "finished").exists()
    error = ran.result("build:a").error_obj
    assert error is not None
    assert error.exit_code == 3
    assert error.workspace == "a"
    assert error.phase == "build"
    assert error.file == proj / "a" / "make.toml"


def test_keep_going_runs_what_does_not_depend_on_the_failure(run_project: RunFn) -> None:
    ran = run_project(
        """
[lifecycle.build]
command = 'if [ "$GGEN_WORKSPACE" = a ]; then exit 4; fi; touch built'
""",
        ["build"],
        workspaces={"a": [], "b": ["a"], "c": []},
        jobs=1,
        keep_going=True,
    )
    assert ran.statuses == {"build:a": "failed", "build:b": "skipped", "build:c": "success"}
    assert "not run: a:build did not succeed" in (ran.result("build:b").error or "")
    assert ran.summary.exit_code == 1


def test_cache_hit_restores_outputs_and_replays_log(run_project: RunFn, tmp_path: Path) -> None:
    make_toml = """
[lifecycle.build]
commands = [
  "echo run >> ../runs.txt",
  "echo compiling $(cat src/main.c)",
  "mkdir -p dist && cp src/main.c dist/app",
]
cwd = "pkg"
inputs = ["src/**"]
outputs = ["dist/app"]
"""
    files = {"pkg/src/main.c": "int main;\n"}
    first = run_project(make_toml, ["build"], files)
    assert first.result("build").cache == "miss"
    proj = tmp_path / "proj"
    (proj / "pkg" / "dist" / "app").unlink()
    second = run_project("", ["build"])
    assert second.result("build").status == "cached"
    assert second.result("build").cache == "hit"
    assert second.result("build").cache_key == first.result("build").cache_key
    assert (proj / "pkg" / "dist" / "app").read_text() == "int main;\n"
    assert "build | compiling int main;" in second.output
    assert (proj / "runs.txt").read_text() == "run\n"
    (proj / "pkg" / "src" / "main.c").write_text("int main2;\n")
    third = run_project("", ["build"])
    assert third.result("build").cache == "miss"
    assert (proj / "runs.txt").read_text() == "run\nrun\n"
    fourth = run_project("", ["build"], no_cache=True)
    assert fourth.result("build").status == "success"
    assert (proj / "runs.txt").read_text() == "run\nrun\nrun\n"


def test_dependency_change_invalidates_dependent_cache(run_project: RunFn, tmp_path: Path) -> None:
    make_toml = """
[lifecycle.gen]
command = "cp spec.txt gen.txt"
inputs = ["spec.txt"]
outputs = ["gen.txt"]
[lifecycle.build]
command = "echo b >> builds.txt"
depends_on = ["gen"]
inputs = ["gen.txt"]
"""
    run_project(make_toml, ["build"], {"spec.txt": "v1"})
    again = run_project("", ["build"])
    assert again.statuses == {"gen": "cached", "build": "cached"}
    (tmp_path / "proj" / "spec.txt").write_text("v2")
    changed = run_project("", ["build"])
    assert changed.statuses == {"gen": "success", "build": "success"}


def test_corrupted_cache_entry_is_reported_and_rebuilt(run_project: RunFn, tmp_path: Path) -> None:
    make_toml = """
[lifecycle.build]
command = "echo built > out.txt"
inputs = ["in.txt"]
outputs = ["out.txt"]
"""
    first = run_project(make_toml, ["build"], {"in.txt": "x"})
    key = first.result("build").cache_key
    entry = tmp_path / "proj" / ".ggen" / "cache" / key
    (entry / "out" / "out.txt").write_text("tampered\n")
    second = run_project("", ["build"])
    assert second.result("build").status == "success"
    assert second.result("build").cache == "miss"
    assert any("corrupted" in w for w in second.summary.warnings)
    assert (tmp_path / "proj" / "out.txt").read_text() == "built\n"


def test_outputs_declared_but_not_produced(run_project: RunFn) -> None:
    ran = run_project(
        """
[lifecycle.build]
command = "mkdir -p dist && touch dist/a.js"
outputs = ["dist/a.js", "dist/b.js", "report/*.xml"]
[cache]
missing_outputs = "error"
""",
        ["build"],
    )
    result = ran.result("build")
    assert result.status == "failed"
    assert isinstance(result.error_obj, OutputsMissingError)
    assert "dist/b.js, report/*.xml" in (result.error or "")
    assert "dist/a.js," not in (result.error or "")


def test_command_not_found_is_named(run_project: RunFn) -> None:
    ran = run_project('[lifecycle.build]\ncommand = "no-such-tool-xyz --fast"\n', ["build"])
    result = ran.result("build")
    assert isinstance(result.error_obj, CommandNotFoundError)
    assert "command not found: 'no-such-tool-xyz'" in (result.error or "")
    assert result.exit_code == 127


def test_timeout_kills_the_tree(run_project: RunFn, tmp_path: Path) -> None:
    ran = run_project(
        """
[lifecycle.build]
command = "sh -c 'sleep 60 & echo $! > child.pid; wait'"
timeout = 1
""",
        ["build"],
    )
    result = ran.result("build")
    assert result.status == "failed"
    assert "timed out after 1s" in (result.error or "")
    assert not alive(int((tmp_path / "proj" / "child.pid").read_text()))


def test_hooks_run_in_order_and_phase_hooks_once(run_project: RunFn, tmp_path: Path) -> None:
    ran = run_project(
        """
[lifecycle.lint]
command = "echo lint-$GGEN_WORKSPACE >> ../order.txt"
[lifecycle.build]
command = "echo build-$GGEN_WORKSPACE >> ../order.txt"
[hooks]
before_all = ["echo before_all >> order.txt"]
before_build = ["lint", "echo before_build >> order.txt"]
after_build = ["echo after_build >> order.txt"]
after_all = ["echo after_all >> order.txt"]
""",
        ["build"],
        workspaces=THREE,
    )
    assert ran.summary.status == "success"
    order = (tmp_path / "proj" / "order.txt").read_text().split()
    assert order[0] == "before_all"
    assert sorted(order[1:4]) == ["lint-a", "lint-b", "lint-c"]
    assert order[4] == "before_build"
    assert sorted(order[5:8]) == ["build-a", "build-b", "build-c"]
    assert order[8:] == ["after_build", "after_all"]


def test_on_error_runs_with_the_failed_tasks(run_project: RunFn, tmp_path: Path) -> None:
    ran = run_project(
        """
[lifecycle.build]
command = "exit 2"
[hooks]
after_all = ["touch after_all_ran"]
on_error = ["echo $GGEN_FAILED_TASKS > failed.txt"]
""",
        ["build"],
    )
    assert ran.summary.status == "failed"
    proj = tmp_path / "proj"
    assert (proj / "failed.txt").read_text() == "build\n"
    assert not (proj / "after_all_ran").exists()


def test_env_selection_is_visible_to_commands(run_project: RunFn, tmp_path: Path) -> None:
    run_project(
        """
[env]
URL = "http://localhost"
[env.production]
URL = "https://example.invalid"
[lifecycle.build]
command = "echo $GGEN_ENV $URL > env.txt"
""",
        ["build"],
        environment="production",
    )
    assert (tmp_path / "proj" / "env.txt").read_text() == "production https://example.invalid\n"


def test_parallel_false_runs_one_at_a_time(run_project: RunFn) -> None:
    ran = run_project(
        """
[lifecycle.migrate]
command = "mkdir ../busy || exit 9; sleep 0.1; rmdir ../busy"
parallel = false
""",
        ["migrate"],
        workspaces=THREE,
        jobs=3,
    )
    assert set(ran.statuses.values()) == {"success"}


def test_pipeline_runs_phases_in_order_and_tasks_once(run_project: RunFn, tmp_path: Path) -> None:
    ran = run_project(
        """
[lifecycle.build]
command = "echo build >> order.txt"
[lifecycle.test]
command = "echo test >> order.txt"
depends_on = ["build"]
[lifecycle.lint]
command = "echo lint >> order.txt"
""",
        ["lint", "test"],
    )
    assert ran.summary.status == "success"
    assert (tmp_path / "proj" / "order.txt").read_text().split() == ["lint", "build", "test"]


def test_pipeline_stops_at_a_failed_phase(run_project: RunFn, tmp_path: Path) -> None:
    ran = run_project(
        '[lifecycle.lint]\ncommand = "exit 1"\n[lifecycle.test]\ncommand = "touch tested"\n',
        ["lint", "test"],
    )
    assert ran.summary.status == "failed"
    assert not (tmp_path / "proj" / "tested").exists()


def test_state_records_every_task_including_failures(run_project: RunFn, tmp_path: Path) -> None:
    run_project(
        """
[lifecycle.build]
command = 'test "$GGEN_WORKSPACE" != b'
inputs = ["*"]
""",
        ["build"],
        workspaces=THREE,
        keep_going=True,
    )
    state = json.loads((tmp_path / "proj" / ".ggen" / "state.json").read_text())
    tasks = {t["workspace"]: t for t in state["tasks"]}
    assert tasks["b"]["result"] == "failed"
    assert tasks["b"]["exit_code"] == 1
    assert tasks["a"]["result"] == "success"
    assert len(tasks["a"]["cache_key"]) == 64
    assert isinstance(tasks["c"]["start"], float)
    assert state["runs"][-1]["result"] == "failed"


def test_corrupted_state_json_does_not_stop_a_run(run_project: RunFn, tmp_path: Path) -> None:
    proj = tmp_path / "proj"
    (proj / ".ggen").mkdir(parents=True)
    (proj / ".ggen" / "state.json").write_text("\x00garbage")
    ran = run_project('[lifecycle.build]\ncommand = "true"\n', ["build"])
    assert ran.summary.status == "success"
    assert any("state.json is corrupted" in w for w in ran.summary.warnings)
    assert json.loads((proj / ".ggen" / "state.json").read_text())["tasks"]


def test_summary_times_are_ordered(run_project: RunFn) -> None:
    before = time.time()
    ran = run_project('[lifecycle.build]\ncommand = "true"\n', ["build"], workspaces=THREE)
    for result in ran.summary.results:
        assert result.started_at is not None
        assert result.ended_at is not None
        assert before <= result.started_at <= result.ended_at <= time.time()
    data = ran.summary.to_dict()
    assert data["span"] >= 0
    assert {t["id"] for t in data["tasks"]} == {"build:a", "build:b", "build:c"}


def test_leftover_background_process_is_ended_with_its_task(
    run_project: RunFn, tmp_path: Path
) -> None:
    ran = run_project(
        '[lifecycle.build]\ncommand = "sleep 60 > /dev/null 2>&1 & echo $! > bg.pid"\n',
        ["build"],
    )
    assert ran.summary.status == "success"
    pid = int((tmp_path / "proj" / "bg.pid").read_text())
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    assert os.path.exists(tmp_path / "proj" / "bg.pid")
