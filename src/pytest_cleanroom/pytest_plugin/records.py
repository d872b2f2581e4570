"""Serialisable records of sandboxed commands, carried on test reports, and the slowest-commands
summary built from them.

A record travels on ``TestReport.cleanroom_commands`` (a list of plain dicts), so pytest-xdist
ships it from the worker to the controller with the report itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..result import RunResult

# Name of the report attribute holding the records of the commands run in that phase.
REPORT_ATTRIBUTE = "cleanroom_commands"
_COMMAND_WIDTH = 80


@dataclass(frozen=True)
class CommandRecord:
    """One sandboxed command of a test, reduced to JSON-friendly values."""

    nodeid: str
    when: str
    command: str
    exit_code: int
    duration: float
    timed_out: bool
    limit_exceeded: str | None
    backend: str
    policy_name: str
    policy_digest: str
    seed: int
    peak_memory: int | None
    cpu_time: float | None
    limits_enforcement: str | None = None

    @classmethod
    def from_result(cls, nodeid: str, when: str, result: RunResult) -> CommandRecord:
        return cls(
            nodeid=nodeid,
            when=when,
            command=result.command_line,
            exit_code=result.exit_code,
            duration=result.duration,
            timed_out=result.timed_out,
            limit_exceeded=result.limit_exceeded,
            backend=result.backend,
            policy_name=result.policy_name,
            policy_digest=result.policy_digest,
            seed=result.seed,
            peak_memory=result.peak_memory,
            cpu_time=result.cpu_time,
            limits_enforcement=result.limits_enforcement,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CommandRecord:
        values: dict[str, Any] = {name: data.get(name) for name in cls.__dataclass_fields__}
        return cls(**values)

    @property
    def outcome(self) -> str:
        """``exit 0``, ``exit 1``, ``timeout``, ``limit memory``..."""
        if self.timed_out:
            return "timeout"
        if self.limit_exceeded:
            return f"limit {self.limit_exceeded}"
        return f"exit {self.exit_code}"


def records_of_report(report: Any) -> list[CommandRecord]:
    """The records a (possibly deserialised) test report carries."""
    raw = getattr(report, REPORT_ATTRIBUTE, None) or []
    return [CommandRecord.from_dict(item) for item in raw]


def slowest_lines(records: Iterable[CommandRecord], count: int) -> list[str]:
    """Aligned lines ``duration  outcome  nodeid  command`` of the ``count`` slowest records."""
    chosen = sorted(records, key=lambda r: r.duration, reverse=True)[:count]
    if not chosen:
        return []
    outcome_width = max(len(r.outcome) for r in chosen)
    nodeid_width = max(len(r.nodeid) for r in chosen)
    lines = []
    for r in chosen:
        command = r.command.replace("\r", "\\r").replace("\n", "\\n")  # one line per command
        if len(command) > _COMMAND_WIDTH:
            command = command[: _COMMAND_WIDTH - 3] + "..."
        lines.append(
            f"{r.duration:8.3f}s  {r.outcome:<{outcome_width}}  "
            f"{r.nodeid:<{nodeid_width}}  {command}".rstrip()
        )
    return lines


def policy_lines(records: Iterable[CommandRecord]) -> list[str]:
    """One line per backend and policy the commands ran under, with its digest and count."""
    counts: dict[tuple[str, str, str], int] = {}
    for r in records:
        key = (r.backend, r.policy_name, r.policy_digest)
        counts[key] = counts.get(key, 0) + 1
    return [
        f"cleanroom: {n} command{'s' if n != 1 else ''} on {backend} under policy {name} ({digest})"
        for (backend, name, digest), n in sorted(counts.items())
    ]


# Results of a test's commands not yet attached to a report (drained at each phase's report).
PENDING_RESULTS = pytest.StashKey[list["RunResult"]]()
