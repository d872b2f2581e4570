"""What a run shows while it goes: prefixed output lines, a live status line on a terminal.

Every write of a line happens under one lock and ends with a newline, so lines of parallel tasks
never mix. On a terminal a status line (done/total, what is running) is redrawn under the output;
elsewhere only plain lines are written.
"""

from __future__ import annotations

import sys
import time
from _thread import allocate_lock

from . import _jsonc

TYPE_CHECKING = False  # typing itself is not imported: the cache-hit fast path loads this module
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any, BinaryIO

    from .graph import Node
    from .results import RunSummary, TaskResult

SYMBOLS = {
    "success": "ok",
    "cached": "ok",
    "failed": "FAILED",
    "skipped": "skipped",
    "cancelled": "cancelled",
    "interrupted": "interrupted",
}


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms" if seconds < 1 else f"{seconds:.2f}s"


class Reporter:
    """Plain, line-based output to ``stream`` (a binary stream)."""

    def __init__(self, stream: BinaryIO, *, quiet: bool = False, color: bool = False) -> None:
        self.stream = stream
        self.quiet = quiet
        self.color = color
        self.lock = allocate_lock()
        self.total = 0
        self.done = 0
        self.running: dict[str, float] = {}

    # -- colour ----------------------------------------------------------------------------------

    def _paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    # -- events ----------------------------------------------------------------------------------

    def plan(self, total: int) -> None:
        with self.lock:
            self.total += total

    def task_started(self, node: Node) -> None:
        with self.lock:
            self.running[node.label] = time.monotonic()
            self._write_line(self._paint(f"> {node.label}", "1") + self._describe_start(node))

    def _describe_start(self, node: Node) -> str:
        if node.kind == "hook":
            return f" ({len(node.entries)} hook entr{'y' if len(node.entries) == 1 else 'ies'})"
        return ""

    def line(self, node: Node, data: bytes) -> None:
        """One line of a task's output (``data`` ends with a newline unless it was cut)."""
        if self.quiet:
            return
        text = data.decode("utf-8", errors="replace").rstrip("\r\n")
        prefix = self._paint(f"{node.label} |", "2")
        with self.lock:
            self._write_line(f"{prefix} {text}")

    def task_finished(self, result: TaskResult) -> None:
        with self.lock:
            self.running.pop(result.label, None)
            self.done += 1
            status = SYMBOLS.get(result.status, result.status)
            code = "32" if result.status in ("success", "cached") else "31"
            cache = f", cache {result.cache}" if result.cache else ""
            extra = f": {result.error}" if result.error else ""
            self._write_line(
                f"{self._paint(status, code)} {result.label} "
                f"({_duration(result.duration)}{cache}){extra}"
            )

    def replay(self, node: Node, log: bytes) -> None:
        for line in log.splitlines(keepends=True):
            self.line(node, line)

    def message(self, text: str) -> None:
        """A warning or notice from the runner itself."""
        with self.lock:
            self._write_line(self._paint(f"ggen: {text}", "33"))

    def close(self) -> None:
        """Stop any live display."""

    def _write_line(self, text: str) -> None:
        self.stream.write(text.encode("utf-8", errors="replace") + b"\n")
        self.stream.flush()


class LiveReporter(Reporter):
    """A :class:`Reporter` for terminals: a status line, redrawn five times a second."""

    def __init__(self, stream: BinaryIO, *, quiet: bool = False) -> None:
        super().__init__(stream, quiet=quiet, color=True)
        import threading

        self._stop = threading.Event()
        self._started = time.monotonic()
        self._ticker = threading.Thread(target=self._tick, name="ggen-progress", daemon=True)
        self._ticker.start()

    def _status(self) -> str:
        now = time.monotonic()
        running = ", ".join(
            f"{label} {_duration(now - since)}" for label, since in list(self.running.items())[:4]
        )
        more = len(self.running) - 4
        if more > 0:
            running += f" +{more}"
        elapsed = _duration(now - self._started)
        return f"[{self.done}/{self.total}] {elapsed} running: {running or '-'}"

    def _write_line(self, text: str) -> None:
        # clear the status line, print, redraw it
        self.stream.write(b"\r\x1b[2K" + text.encode("utf-8", errors="replace") + b"\n")
        self.stream.write(b"\x1b[2m" + self._status().encode() + b"\x1b[0m")
        self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.2):
            with self.lock:
                self.stream.write(b"\r\x1b[2K\x1b[2m" + self._status().encode() + b"\x1b[0m")
                self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        self._ticker.join()
        with self.lock:
            self.stream.write(b"\r\x1b[2K")
            self.stream.flush()


# -- the outcome, printed once the run is over ------------------------------------------------


def echo(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    """Write a line to stdout (stderr with ``err``), flushed, as ``click.echo`` does."""
    stream = sys.stderr if err else sys.stdout
    stream.write(text + ("\n" if nl else ""))
    stream.flush()


def emit(data: Any) -> None:
    echo(_jsonc.dumps_indented(data))


def print_summary(summary: RunSummary) -> None:
    results = summary.results
    if results:
        width = max(len(r.label) for r in results)
        echo("")
        echo(f"{'task':<{width}}  {'status':<11}  {'duration':>9}  cache")
        for r in results:
            duration = f"{r.duration:.3f}s" if r.started_at else "-"
            echo(f"{r.label:<{width}}  {r.status:<11}  {duration:>9}  {r.cache or '-'}")
    for r in results:
        if r.status != "failed":
            continue
        echo(f"\nFAILED {r.label}: {r.error}", err=True)
        if r.tail:
            echo("  last lines of output:", err=True)
            for line in r.tail[-15:]:
                echo(f"    {line}", err=True)
        if r.log:
            echo(f"  full log: {r.log}", err=True)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    parts = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    span = summary.ended_at - summary.started_at
    echo(f"\n{summary.status}: {parts or 'nothing to do'} in {span:.2f}s")


def span(results: Sequence[TaskResult]) -> float:
    """Seconds from the first task's start to the last task's end (tasks, not hooks)."""
    times = [(r.started_at, r.ended_at) for r in results if r.kind == "task"]
    starts = [s for s, e in times if s is not None and e is not None]
    ends = [e for s, e in times if s is not None and e is not None]
    return max(ends) - min(starts) if starts else 0.0


def task_dict(result: TaskResult) -> dict[str, Any]:
    """A task's result as ``--json`` prints it."""
    return {
        "id": result.id,
        "label": result.label,
        "kind": result.kind,
        "phase": result.phase,
        "workspace": result.workspace,
        "status": result.status,
        "started_at": result.started_at,
        "ended_at": result.ended_at,
        "duration": round(result.duration, 6),
        "exit_code": result.exit_code,
        "cache": result.cache,
        "cache_key": result.cache_key,
        "error": result.error,
        "error_type": type(result.error_obj).__name__ if result.error_obj else None,
        "log": result.log,
    }


def summary_dict(summary: RunSummary) -> dict[str, Any]:
    """A run's summary as ``--json`` prints it."""
    return {
        "run_id": summary.run_id,
        "project": summary.project,
        "phases": summary.phases,
        "environment": summary.environment,
        "status": summary.status,
        "exit_code": summary.exit_code,
        "started_at": summary.started_at,
        "ended_at": summary.ended_at,
        "duration": round(summary.ended_at - summary.started_at, 6),
        "span": round(span(summary.results), 6),
        "tasks": [task_dict(r) for r in summary.results],
        "warnings": summary.warnings,
        "validation_gate": summary.validation_gate,
        "task_cleanup": summary.task_cleanup,
    }
