"""Running scenarios through the real engine: shared workspace, concurrency, failure, rollback,
timeouts. Every command is a real sandboxed process."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.scenarios import ScenarioFailedError, scenario, step

pytestmark = pytest.mark.integration

# Each member of a pair waits (bounded: {tries} x 50 ms) for the other's marker file: the pair
# can only pass when both run at the same time. Sequentially, the first gives up with code 9.
WAIT_FOR = (
    "touch {me}.ready; i=0; while [ ! -e {other}.ready ]; do i=$((i+1)); "
    "[ $i -gt {tries} ] && exit 9; sleep 0.05; done; echo {me} saw {other}"
)


@pytest.fixture
def room(tmp_path: Path) -> Cleanroom:
    return Cleanroom(tmp_path / "workspace", policy="standard")


def test_steps_share_the_workspace_and_results_come_in_order(room: Cleanroom) -> None:
    sc = (
        scenario("share")
        .step("write", "echo hello > greeting.txt", expect_files=["greeting.txt"])
        .step("read", ["cat", "greeting.txt"], expect_stdout=r"^hello$")
        .step("count", "wc -c < greeting.txt", expect_stdout=r"6")
    )
    result = room.run_scenario(sc)
    assert result.ok
    assert result.all_steps_succeeded()
    assert [r.command[-1] for r in result.results] == [
        "echo hello > greeting.txt",
        "greeting.txt",
        "wc -c < greeting.txt",
    ]
    assert result.step("read").stdout == "hello\n"
    assert result.failed_step is None
    assert result.duration >= sum(r.duration for r in result.results)
    result.assert_success()


def test_a_concurrent_group_really_runs_at_the_same_time(room: Cleanroom) -> None:
    sc = (
        scenario("together")
        .step("prepare", "mkdir -p sync")
        .concurrent(
            step("left", WAIT_FOR.format(me="sync/left", other="sync/right", tries=200)),
            step("right", WAIT_FOR.format(me="sync/right", other="sync/left", tries=200)),
        )
        .step("after", "ls sync", expect_stdout="left.ready")
    )
    result = room.run_scenario(sc)
    assert result.ok, result.failure_report()
    assert result.step("left").stdout == "sync/left saw sync/right\n"
    assert result.step("right").stdout == "sync/right saw sync/left\n"
    assert [o.name for o in result.outcomes] == ["prepare", "left", "right", "after"]
    assert result.outcome("left").group == result.outcome("right").group == 1


def test_the_same_pair_run_sequentially_cannot_pass(room: Cleanroom) -> None:
    # The control experiment for the test above: without concurrency the wait gives up.
    sc = (
        scenario("apart")
        .step("left", WAIT_FOR.format(me="left", other="right", tries=10))
        .step("right", WAIT_FOR.format(me="right", other="left", tries=10))
    )
    result = room.run_scenario(sc)
    assert result.failed_step is not None
    assert result.failed_step.name == "left"
    assert result.step("left").exit_code == 9


def test_failure_skips_the_rest_and_runs_every_rollback_step(room: Cleanroom) -> None:
    sc = (
        scenario("broken")
        .step("make", "echo partial > out.txt")
        .step("fail", "echo compiling; echo 'error: boom' >&2; exit 3")
        .step("never", "touch never.txt")
        .with_rollback("clean", "rm out.txt")
        .with_rollback("note", "echo rolled back > rollback.txt")
    )
    result = room.run_scenario(sc)
    assert not result.ok
    assert not result.all_steps_succeeded()
    failed = result.failed_step
    assert failed is not None
    assert failed.name == "fail"
    assert failed.problems == ("expected exit code 0, got 3",)
    assert result.outcome("never").skipped
    assert (
        result.outcome("never").skipped_reason == "step 'fail' failed (expected exit code 0, got 3)"
    )
    with pytest.raises(LookupError, match="skipped"):
        result.step("never")
    assert [o.status for o in result.rollback] == ["passed", "passed"]
    workspace = Path(room.workspace)
    assert not (workspace / "out.txt").exists()
    assert not (workspace / "never.txt").exists()
    assert (workspace / "rollback.txt").read_text() == "rolled back\n"
    report = result.failure_report()
    assert "step 'fail' failed: expected exit code 0, got 3" in report
    assert "exit code 3" in report
    assert "error: boom" in report
    assert "compiling" in report
    with pytest.raises(ScenarioFailedError, match="error: boom"):
        result.assert_success()


def test_no_rollback_when_nothing_failed(room: Cleanroom) -> None:
    result = room.run_scenario(
        scenario("fine").step("a", "true").with_rollback("clean", "touch rolled.txt")
    )
    assert result.ok
    assert not result.rollback_ran
    assert result.rollback[0].skipped_reason == "no step failed"
    assert not (Path(room.workspace) / "rolled.txt").exists()


def test_continue_on_failure_tolerates_a_failing_step(room: Cleanroom) -> None:
    sc = (
        scenario("lenient")
        .step("flaky", "exit 1", continue_on_failure=True)
        .step("next", "echo still here")
        .with_rollback("clean", "touch rolled.txt")
    )
    result = room.run_scenario(sc)
    assert result.ok
    assert not result.all_steps_succeeded()
    assert result.failed_step is None
    assert [o.name for o in result.tolerated_failures] == ["flaky"]
    assert result.step("next").stdout == "still here\n"
    assert not result.rollback_ran


def test_expectations_are_checked(room: Cleanroom) -> None:
    sc = scenario("expect").step(
        "check",
        "echo out; echo err >&2; exit 4",
        expect_exit=4,
        expect_stdout="^nope$",
        expect_stderr="^err$",
        expect_files=["missing.txt"],
    )
    result = room.run_scenario(sc)
    failed = result.failed_step
    assert failed is not None
    assert failed.problems == (
        "expected stdout to match /^nope$/",
        "expected file 'missing.txt' to exist in the workspace",
    )


def test_any_exit_code_when_expect_exit_is_none(room: Cleanroom) -> None:
    assert room.run_scenario(scenario("any").step("a", "exit 7", expect_exit=None)).ok


def test_env_and_cwd_reach_the_step(room: Cleanroom) -> None:
    sc = (
        scenario("env")
        .with_env(SHARED="s", OVERRIDE="scenario")
        .step("mk", "mkdir sub")
        .step(
            "show",
            'echo "$SHARED $OVERRIDE $OWN $(basename "$PWD")"',
            env={"OVERRIDE": "step", "OWN": "o"},
            cwd="sub",
        )
    )
    assert room.run_scenario(sc).step("show").stdout == "s step o sub\n"


def test_stdin_is_given_to_the_step(room: Cleanroom) -> None:
    result = room.run_scenario(scenario("in").step("cat", ["cat"], stdin="fed\n"))
    assert result.step("cat").stdout == "fed\n"


def test_a_hanging_step_is_killed_by_the_scenario_timeout_and_rollback_runs(
    room: Cleanroom,
) -> None:
    sc = (
        scenario("hang")
        .step("quick", "true")
        .step("hang", "echo started; sleep 600")
        .step("never", "true")
        .with_rollback("clean", "echo cleaned > cleaned.txt")
        .timeout(2)
    )
    result = room.run_scenario(sc)
    assert result.timed_out
    failed = result.failed_step
    assert failed is not None
    assert failed.name == "hang"
    assert failed.result is not None
    assert failed.result.timed_out
    assert failed.problems == ("killed by the scenario timeout of 2s",)
    assert result.outcome("never").skipped
    assert result.rollback[0].passed
    assert (Path(room.workspace) / "cleaned.txt").read_text() == "cleaned\n"
    assert "the scenario timeout of 2s was reached" in result.failure_report()


def test_a_failing_rollback_is_reported_with_the_original_failure(room: Cleanroom) -> None:
    sc = (
        scenario("double")
        .step("build", "echo 'build broke' >&2; exit 2")
        .with_rollback("restore", "echo 'restore broke too' >&2; exit 5")
        .with_rollback("tidy", "touch tidy.txt")
    )
    result = room.run_scenario(sc)
    assert [o.name for o in result.rollback_failures] == ["restore"]
    assert result.rollback[1].passed  # one rollback failing does not stop the others
    report = result.failure_report()
    assert report.index("build broke") < report.index("the rollback failed too")
    assert "rollback step 'restore' failed: expected exit code 0, got 5" in report
    assert "restore broke too" in report


def test_a_missing_program_fails_its_step(room: Cleanroom) -> None:
    result = room.run_scenario(
        scenario("missing").step("ghost", ["no-such-program-xyz"]).step("after", "true")
    )
    failed = result.failed_step
    assert failed is not None
    assert failed.name == "ghost"
    assert result.outcome("after").skipped
    assert "no-such-program-xyz" in result.failure_report()


def test_unknown_step_name_lists_the_steps(room: Cleanroom) -> None:
    result = room.run_scenario(scenario("s").step("a", "true"))
    with pytest.raises(KeyError, match=r"no step 'b' \(steps: a\)"):
        result.step("b")


def test_every_step_runs_under_the_scenarios_policy(tmp_path: Path) -> None:
    room = Cleanroom(tmp_path / "ws", policy="standard")
    result = room.run_scenario(scenario("p").with_policy("strict").step("a", "true"))
    assert result.step("a").policy_name == "strict"
