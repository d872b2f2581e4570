"""Running a :class:`~.model.Scenario` through a cleanroom, step by step, in one workspace."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import BackendUnavailableError, CleanroomError, PolicyError
from ..policy import Policy
from ..repeat.checker import checker_for
from ..result import RunResult
from .model import Scenario, Stage, Step
from .result import ScenarioResult, StepOutcome

if TYPE_CHECKING:
    from ..engine import Cleanroom

# Errors that say the environment cannot run anything: they end the scenario with an exception
# instead of being reported as one step's failure.
_FATAL = (BackendUnavailableError, PolicyError)


class _Clock:
    """A budget in seconds that may be unlimited."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()


def run_scenario(cleanroom: Cleanroom, scenario: Scenario) -> ScenarioResult:
    """Run ``scenario``'s stages in order in ``cleanroom``'s workspace, then its rollback if needed.

    After an unexpected failure the remaining steps are skipped; a step whose failure is
    ``continue_on_failure`` lets the scenario go on. Rollback steps run (every one of them) after
    such a failure or after the scenario's timeout killed a step.
    """
    stages = scenario.plan()
    started = time.monotonic()
    clock = _Clock(scenario.scenario_timeout)
    outcomes: list[StepOutcome] = []
    stop_reason: str | None = None
    timed_out = False

    for index, stage in enumerate(stages):
        remaining = clock.remaining()
        if stop_reason is None and remaining is not None and remaining <= 0:
            timed_out = True
            stop_reason = f"the scenario timeout of {scenario.scenario_timeout:g}s was reached"
        if stop_reason is not None:
            outcomes.extend(StepOutcome(s, "skipped", skipped_reason=stop_reason) for s in stage)
            continue
        group = index if len(stage) > 1 else None
        stage_outcomes = _run_stage(cleanroom, scenario, stage, clock, group=group)
        outcomes.extend(stage_outcomes)
        for outcome in stage_outcomes:
            if outcome.failed and not outcome.tolerated and stop_reason is None:
                why = f" ({outcome.problems[0]})" if outcome.problems else ""
                stop_reason = f"step {outcome.name!r} failed{why}"
            if _killed_by_deadline(outcome, clock):
                timed_out = True

    rollback: list[StepOutcome] = []
    if stop_reason is not None or timed_out:
        rollback_clock = _Clock(
            scenario.rollback_timeout
            if scenario.rollback_timeout is not None
            else scenario.scenario_timeout
        )
        for item in scenario.rollback_steps:
            left = rollback_clock.remaining()
            if left is not None and left <= 0:
                reason = f"the rollback timeout of {rollback_clock.seconds:g}s was reached"
                rollback.append(StepOutcome(item, "skipped", skipped_reason=reason, rollback=True))
                continue
            rollback.append(_run_step(cleanroom, scenario, item, rollback_clock, rollback=True))
    else:
        rollback = [
            StepOutcome(s, "skipped", skipped_reason="no step failed", rollback=True)
            for s in scenario.rollback_steps
        ]

    return ScenarioResult(
        name=scenario.name,
        outcomes=tuple(outcomes),
        rollback=tuple(rollback),
        duration=time.monotonic() - started,
        timed_out=timed_out,
        timeout=scenario.scenario_timeout,
        source=scenario.source,
    )


def _run_stage(
    cleanroom: Cleanroom, scenario: Scenario, stage: Stage, clock: _Clock, *, group: int | None
) -> list[StepOutcome]:
    if len(stage) == 1:
        return [_run_step(cleanroom, scenario, stage[0], clock)]

    def run_group(target: Cleanroom) -> list[StepOutcome]:
        # One thread per member: the members really run at the same time.
        with ThreadPoolExecutor(max_workers=len(stage), thread_name_prefix="scenario") as pool:
            futures = [
                pool.submit(_run_step, target, scenario, s, clock, group=group) for s in stage
            ]
            return [f.result() for f in futures]

    checker = checker_for(cleanroom)
    if checker is not None:
        # Under the repeat check the whole group is one unit: it is replayed as a group.
        return checker.check_unit(
            run_group,
            describe=f"concurrent group {', '.join(s.name for s in stage)}",
            results_of=_results_of,
        )
    return run_group(cleanroom)


def _results_of(outcomes: Sequence[StepOutcome]) -> list[RunResult | None]:
    return [o.result for o in outcomes]


def _run_step(
    cleanroom: Cleanroom,
    scenario: Scenario,
    item: Step,
    clock: _Clock,
    *,
    rollback: bool = False,
    group: int | None = None,
) -> StepOutcome:
    timeout = _step_timeout(item, clock, _ceiling(cleanroom, scenario))
    env = {**scenario.env, **item.env} or None
    try:
        result = cleanroom.run(
            item.run if isinstance(item.run, str) else list(item.run),
            policy=scenario.policy,
            timeout=timeout,
            env=env,
            cwd=item.cwd,
            stdin=item.stdin,
        )
    except _FATAL:
        raise
    except CleanroomError as exc:
        return StepOutcome(
            item,
            "failed",
            problems=(f"could not run: {exc}",),
            tolerated=item.continue_on_failure and not rollback,
            rollback=rollback,
            group=group,
        )
    problems = _check_expectations(item, result, _workspace_root(cleanroom, result))
    if result.timed_out and _expired(clock):
        problems[0] = f"killed by the scenario timeout of {clock.seconds:g}s"
    return StepOutcome(
        item,
        "failed" if problems else "passed",
        result=result,
        problems=tuple(problems),
        tolerated=bool(problems) and item.continue_on_failure and not rollback,
        rollback=rollback,
        group=group,
    )


def _step_timeout(item: Step, clock: _Clock, ceiling: float | None) -> float | None:
    """The step's own timeout, shortened to what is left of the scenario's budget. The budget is
    passed only when it is shorter than the limit the command gets anyway (``ceiling``), so that
    a long scenario budget never asks the pytest fixture for more than its policy allows."""
    remaining = clock.remaining()
    if remaining is None:
        return item.timeout
    remaining = max(remaining, 0.001)
    if item.timeout is not None:
        return min(item.timeout, remaining)
    if ceiling is not None and remaining >= ceiling:
        return None
    return remaining


def _ceiling(cleanroom: Cleanroom, scenario: Scenario) -> float | None:
    """The wall-clock limit a command of ``scenario`` gets when no timeout is passed."""
    own = getattr(cleanroom, "timeout", None)
    if own is not None:
        return float(own)
    limits = [getattr(getattr(cleanroom, "policy", None), "timeout", None)]
    if scenario.policy is not None:
        limits.append(Policy.coerce(scenario.policy).timeout)
    known = [float(t) for t in limits if t is not None]
    return min(known) if known else None


def _expired(clock: _Clock) -> bool:
    """Whether the budget is spent: a step that timed out now was killed by it."""
    remaining = clock.remaining()
    return remaining is not None and remaining <= 0.05


def _killed_by_deadline(outcome: StepOutcome, clock: _Clock) -> bool:
    return outcome.result is not None and outcome.result.timed_out and _expired(clock)


def _workspace_root(cleanroom: Cleanroom, result: RunResult) -> Path | None:
    in_use = getattr(cleanroom, "workspace_in_use", None)
    if in_use is not None:  # where the step's files are now (the repeat check may bind a view)
        return Path(in_use)
    if result.workspace is not None:
        return Path(result.workspace)
    workspace = getattr(cleanroom, "workspace", None)
    return None if workspace is None else Path(workspace)


def _check_expectations(item: Step, result: RunResult, root: Path | None) -> list[str]:
    problems: list[str] = []
    if result.timed_out:
        problems.append(f"timed out after {result.duration:.1f}s")
    elif result.limit_exceeded is not None:
        problems.append(f"the {result.limit_exceeded} limit ended it")
    elif item.expect_exit is not None and result.exit_code != item.expect_exit:
        problems.append(f"expected exit code {item.expect_exit}, got {result.exit_code}")
    checks: list[tuple[str, str | None, Callable[[], str]]] = [
        ("stdout", item.expect_stdout, lambda: result.stdout),
        ("stderr", item.expect_stderr, lambda: result.stderr),
    ]
    for stream, pattern, text in checks:
        if pattern is not None and re.search(pattern, text(), re.MULTILINE) is None:
            problems.append(f"expected {stream} to match /{pattern}/")
    for relative in item.expect_files:
        if root is None or not (root / relative).exists():
            problems.append(f"expected file {relative!r} to exist in the workspace")
    return problems
