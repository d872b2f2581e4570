"""What a run shows while it goes: prefixed output lines, a live status line on a terminal.

Every write of a line happens under one lock and ends with a newline, so lines of parallel tasks
never mix. On a terminal a status line (done/total, what is running) is redrawn under the output;
elsewhere only plain lines are written.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from .graph import Node
    from .results import TaskResult

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
        self.lock = threading.Lock()
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
