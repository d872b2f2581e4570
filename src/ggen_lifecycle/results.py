"""The records of a run: its options, each task's result and the whole invocation's summary.

Shared by the runner, the reporter and the command line, so that none of them imports another
for its types.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import LifecycleError
from .reporter import span, summary_dict, task_dict

if TYPE_CHECKING:
    from .graph import Node

GOOD = frozenset({"success", "cached"})
BAD = frozenset({"failed", "skipped", "cancelled", "interrupted"})
EXIT_INTERRUPTED = 130


@dataclass
class RunOptions:
    """How to run: parallelism, failure policy, cache use, environment, workspace filter."""

    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    keep_going: bool = False
    no_cache: bool = False
    environment: str | None = None
    workspace: str | None = None
    wait: float = 0.0
    quiet: bool = False
    #: the deploy gate's record (production/gate.py), kept in the run's state and summary
    validation_gate: dict[str, Any] | None = None


@dataclass
class TaskResult:
    """What happened to one task (or hook) in a run."""

    id: str
    label: str
    kind: str
    phase: str
    workspace: str | None
    status: str
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    # "hit", "remote hit", "miss", "off", or None for hooks and tasks never started
    cache: str | None = None
    cache_key: str | None = None
    error: str | None = None
    error_obj: LifecycleError | None = None
    log: str | None = None
    tail: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, node: Node, status: str = "success", **fields: Any) -> TaskResult:
        """A result for ``node`` (its id, label, kind, phase and workspace) with ``status``."""
        return cls(
            id=node.id,
            label=node.label,
            kind=node.kind,
            phase=node.phase,
            workspace=node.workspace,
            status=status,
            **fields,
        )

    @property
    def duration(self) -> float:
        if self.started_at is None or self.ended_at is None:
            return 0.0
        return self.ended_at - self.started_at

    def duration_so_far(self) -> float:
        """Seconds since the task started (its duration while it still runs)."""
        return 0.0 if self.started_at is None else time.time() - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return task_dict(self)


@dataclass
class RunSummary:
    """The outcome of a whole invocation."""

    run_id: str
    project: str
    phases: list[str]
    environment: str | None
    started_at: float
    ended_at: float = 0.0
    status: str = "success"  # success | failed | interrupted
    results: list[TaskResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    validation_gate: dict[str, Any] | None = None
    #: how the run's commands were killed: ``cgroup`` (with every process they started),
    #: ``process group: WHY`` (what left the group with ``setsid`` escapes), ``None`` (none ran)
    task_cleanup: str | None = None

    @property
    def exit_code(self) -> int:
        return {"success": 0, "interrupted": EXIT_INTERRUPTED}.get(self.status, 1)

    @property
    def span(self) -> float:
        """Seconds from the first task's start to the last task's end (tasks, not hooks)."""
        return span(self.results)

    def errors(self) -> list[LifecycleError]:
        return [r.error_obj for r in self.results if r.error_obj is not None]

    def to_dict(self) -> dict[str, Any]:
        return summary_dict(self)
