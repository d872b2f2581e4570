"""What a scenario did: one :class:`StepOutcome` per step, in order, and the rollback's."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from ..result import CleanroomAssertionError, RunResult
from .model import Step

Status = Literal["passed", "failed", "skipped"]


class ScenarioFailedError(CleanroomAssertionError):
    """A scenario did not succeed; the message shows the failed step's command and output."""


@dataclass(frozen=True)
class StepOutcome:
    """The fate of one step: ``passed``, ``failed`` (``problems`` says why) or ``skipped``.

    ``result`` is ``None`` when the step did not run, or when the command could not be started
    (then ``problems`` holds the error). ``tolerated`` marks a failure that
    ``continue_on_failure`` let the scenario survive.
    """

    step: Step
    status: Status
    result: RunResult | None = None
    problems: tuple[str, ...] = ()
    skipped_reason: str | None = None
    tolerated: bool = False
    rollback: bool = False
    group: int | None = None  # index of the concurrent stage the step ran in, if any

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"

    def describe(self) -> str:
        """One paragraph: what failed and, when the command ran, its command, exit and tails."""
        kind = "rollback step" if self.rollback else "step"
        if self.skipped:
            return f"{kind} {self.name!r} skipped: {self.skipped_reason}"
        head = f"{kind} {self.name!r} {self.status}"
        if self.problems:
            head += ": " + "; ".join(self.problems)
        if self.result is None:
            return f"{head}\ncommand: {self.step.command_line}"
        return f"{head}\n{self.result.describe()}"


@dataclass(frozen=True)
class ScenarioResult:
    """Every step's outcome in run order, the rollback's, and the scenario's duration (seconds)."""

    name: str
    outcomes: tuple[StepOutcome, ...]
    rollback: tuple[StepOutcome, ...] = ()
    duration: float = 0.0
    timed_out: bool = False
    timeout: float | None = None
    source: str | None = None
    _by_name: dict[str, StepOutcome] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_name.update({o.name: o for o in self.outcomes})

    def __repr__(self) -> str:
        state = (
            "ok"
            if self.ok
            else f"failed at {self.failed_step.name!r}"
            if self.failed_step
            else "failed"
        )
        steps = len(self.outcomes)
        return f"<ScenarioResult {self.name!r}: {state}, {steps} steps, {self.duration:.3f}s>"

    # -- the questions users ask -----------------------------------------------------------------

    @property
    def results(self) -> list[RunResult]:
        """The :class:`RunResult` of every main step that ran, in order."""
        return [o.result for o in self.outcomes if o.result is not None]

    def all_steps_succeeded(self) -> bool:
        """True when every main step ran and passed (a tolerated failure counts as a failure)."""
        return all(o.passed for o in self.outcomes)

    @property
    def ok(self) -> bool:
        """True unless a step failed without ``continue_on_failure``, the scenario timed out,
        or a rollback step failed."""
        return self.failed_step is None and not self.timed_out and self.rollback_failures == []

    @property
    def failed_step(self) -> StepOutcome | None:
        """The first failure that stopped the scenario (tolerated failures are not counted)."""
        return next((o for o in self.outcomes if o.failed and not o.tolerated), None)

    @property
    def tolerated_failures(self) -> list[StepOutcome]:
        return [o for o in self.outcomes if o.failed and o.tolerated]

    @property
    def skipped_steps(self) -> list[StepOutcome]:
        return [o for o in self.outcomes if o.skipped]

    @property
    def rollback_ran(self) -> bool:
        return any(not o.skipped for o in self.rollback)

    @property
    def rollback_failures(self) -> list[StepOutcome]:
        return [o for o in self.rollback if o.failed]

    def outcome(self, name: str) -> StepOutcome:
        """The outcome of the main or rollback step ``name``."""
        found = self._by_name.get(name) or next((o for o in self.rollback if o.name == name), None)
        if found is None:
            known = ", ".join([o.name for o in self.outcomes] + [o.name for o in self.rollback])
            raise KeyError(f"scenario {self.name!r} has no step {name!r} (steps: {known})")
        return found

    def step(self, name: str) -> RunResult:
        """The :class:`RunResult` of step ``name``; :class:`LookupError` if it did not run."""
        found = self.outcome(name)
        if found.result is None:
            if found.skipped:
                why = f"it was skipped: {found.skipped_reason}"
            else:
                why = "; ".join(found.problems) or "it did not run"
            raise LookupError(f"step {name!r} of scenario {self.name!r} has no result: {why}")
        return found.result

    def __iter__(self) -> Iterator[StepOutcome]:
        return iter(self.outcomes)

    def __len__(self) -> int:
        return len(self.outcomes)

    # -- reporting -------------------------------------------------------------------------------

    def summary(self) -> str:
        """A line per step: status, name, exit code and duration."""
        lines = [f"scenario {self.name!r}: {'ok' if self.ok else 'FAILED'} in {self.duration:.3f}s"]
        for outcome in (*self.outcomes, *self.rollback):
            tag = "rollback " if outcome.rollback else ""
            extra = ""
            if outcome.result is not None:
                extra = f" exit={outcome.result.exit_code} {outcome.result.duration:.3f}s"
            if outcome.tolerated:
                extra += " (tolerated)"
            if outcome.skipped:
                extra = f" ({outcome.skipped_reason})"
            lines.append(f"  {outcome.status:<7} {tag}{outcome.name}{extra}")
        return "\n".join(lines)

    def failure_report(self) -> str:
        """Why the scenario failed: the failing step in full, then every failed rollback step."""
        where = f" ({self.source})" if self.source else ""
        parts = [f"scenario {self.name!r}{where} failed"]
        if self.timed_out:
            parts[0] += f": the scenario timeout of {self.timeout:g}s was reached"
        failed = self.failed_step
        if failed is not None:
            parts.append(failed.describe())
        for outcome in self.rollback_failures:
            parts.append("the rollback failed too:\n" + outcome.describe())
        parts.append(self.summary())
        return "\n\n".join(parts)

    def assert_success(self) -> ScenarioResult:
        """Raise :class:`ScenarioFailedError` with :meth:`failure_report` unless :attr:`ok`."""
        if not self.ok:
            __tracebackhide__ = True
            raise ScenarioFailedError(self.failure_report())
        return self
