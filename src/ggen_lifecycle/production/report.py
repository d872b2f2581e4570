"""What a production validation found: each step's outcome and resources, the readiness verdict
with the steps' results, every blocker with its remediation; as text, JSON and Markdown."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..readiness import Verdict

TAIL_LINES = 20
PASSED, FAILED = "PASSED", "FAILED"


@dataclass
class StepOutcome:
    """One step in one workspace: ``passed``, ``failed`` or ``skipped``, and why."""

    name: str
    workspace: str | None
    outcome: str
    detail: str = ""
    commands: list[str] = field(default_factory=list)
    duration: float = 0.0
    exit_code: int | None = None
    timed_out: bool = False
    peak_memory: int | None = None
    cpu_time: float | None = None
    limits_enforcement: str | None = None
    output_tail: str = ""
    verifies: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.workspace}:{self.name}" if self.workspace else self.name

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "step",
            "name": self.name,
            "workspace": self.workspace,
            "outcome": self.outcome,
            "detail": self.detail,
            "commands": self.commands,
            "durationSeconds": round(self.duration, 3),
            "exitCode": self.exit_code,
            "timedOut": self.timed_out,
            "peakMemoryBytes": self.peak_memory,
            "cpuSeconds": None if self.cpu_time is None else round(self.cpu_time, 3),
            "limitsEnforcement": self.limits_enforcement,
            "outputTail": self.output_tail,
            "verifies": self.verifies,
        }


@dataclass(frozen=True)
class Blocker:
    """Something that keeps the project from being ready, and what to do about it."""

    reason: str
    remediation: str

    def to_json(self) -> dict[str, str]:
        return {"reason": self.reason, "remediation": self.remediation}


@dataclass
class ProductionReport:
    """The outcome of ``ggen lifecycle validate --env ENV``."""

    project: str
    environment: str
    verdict: Verdict
    steps: list[StepOutcome] = field(default_factory=list)
    inputs_digest: str = ""
    input_files: int = 0
    policy_name: str = ""
    policy_digest: str = ""
    backend: str = ""
    started_at: float = field(default_factory=time.time)
    duration: float = 0.0
    statement: str | None = None
    keyid: str | None = None

    @property
    def blockers(self) -> list[Blocker]:
        found = [_step_blocker(s) for s in self.steps if s.outcome == "failed"]
        found += [Blocker(reason, fix) for reason, fix in self.verdict.remediations]
        return found

    @property
    def ready(self) -> bool:
        return not self.blockers

    @property
    def result(self) -> str:
        return PASSED if self.ready else FAILED

    def to_json(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "result": self.result,
            "project": self.project,
            "environment": self.environment,
            "score": self.verdict.score.score,
            "inputs": {"digest": self.inputs_digest, "files": self.input_files},
            "policy": {"name": self.policy_name, "digest": self.policy_digest},
            "backend": self.backend,
            "durationSeconds": round(self.duration, 3),
            "steps": [s.to_json() for s in self.steps],
            "blockers": [b.to_json() for b in self.blockers],
            "readiness": self.verdict.to_dict(),
            "statement": self.statement,
            "keyid": self.keyid,
        }

    def text(self) -> list[str]:
        """The terminal report, line by line."""
        head = "ready" if self.ready else "NOT ready"
        lines = [
            f"{head} for {self.environment} (score {self.verdict.score.score:g}/100)"
            + (":" if not self.ready else "")
        ]
        for blocker in self.blockers:
            lines.append(f"  - {blocker.reason}")
            lines.append(f"    fix: {blocker.remediation}")
        if self.statement:
            lines.append(f"signed statement {self.statement} (key {str(self.keyid)[:16]})")
        return lines

    def markdown(self) -> str:
        """A Markdown report, for a pull request comment."""
        mark = "✅" if self.ready else "❌"
        out = [
            f"## {mark} Production validation of {self.project} ({self.environment}): "
            f"{self.result}",
            "",
            f"Readiness score **{self.verdict.score.score:g}/100**; inputs "
            f"`{self.inputs_digest}` ({self.input_files} files); policy `{self.policy_name}` "
            f"(`{self.policy_digest[:19]}…`) on the `{self.backend or '-'}` backend.",
        ]
        if self.steps:
            out += [
                "",
                "| step | outcome | duration | peak memory | CPU | detail |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            out += [_markdown_row(step) for step in self.steps]
        if self.blockers:
            out += ["", "### Blockers", ""]
            out += [f"- {_md(b.reason)}  \n  *fix:* {_md(b.remediation)}" for b in self.blockers]
        for step in self.steps:
            if step.outcome == "failed" and step.output_tail:
                out += [
                    "",
                    f"<details><summary>{_md(step.label)}: last lines of output</summary>",
                    "",
                    "```text",
                    step.output_tail.replace("```", "'''"),
                    "```",
                    "</details>",
                ]
        return "\n".join(out) + "\n"


def _step_blocker(step: StepOutcome) -> Blocker:
    if step.timed_out:
        fix = (
            f"make step {step.name!r} finish sooner, or raise its timeout ([lifecycle."
            f"{step.name}] timeout, or [validation] timeout)"
        )
    else:
        fix = (
            f"fix what step {step.name!r} reports (its output tail is in the report), then "
            "validate again"
        )
    return Blocker(f"step {step.label} failed: {step.detail}", fix)


def _markdown_row(step: StepOutcome) -> str:
    memory = f"{step.peak_memory / 2**20:.0f} MiB" if step.peak_memory else "-"
    cpu = f"{step.cpu_time:.1f} s" if step.cpu_time is not None else "-"
    cells = [step.label, step.outcome, f"{step.duration:.1f} s", memory, cpu, step.detail]
    return "| " + " | ".join(_md(c) for c in cells) + " |"


def _md(text: str) -> str:
    """``text`` inert in a Markdown table cell (no pipes, HTML or line breaks)."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")
