"""Download progress on stderr: shown on a terminal, or when asked for with ``--progress``."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - loop always returns


class Progress:
    """A one-line progress report; ``None`` for ``enabled`` means "when stderr is a terminal"."""

    def __init__(self, enabled: bool | None = None, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._label = ""
        self._total: int | None = None
        self._done = 0
        self._last = 0.0

    def start(self, label: str, total: int | None) -> None:
        """Begin reporting a transfer of ``total`` bytes (``None`` when unknown)."""
        self._label, self._total, self._done, self._last = label, total, 0, 0.0
        self._draw(force=True)

    def advance(self, count: int) -> None:
        """``count`` more bytes arrived."""
        self._done += count
        self._draw(force=False)

    def finish(self) -> None:
        """End the line."""
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def note(self, message: str) -> None:
        """A one-off status line (only when progress is shown)."""
        if self.enabled:
            self.stream.write(message + "\n")
            self.stream.flush()

    def _draw(self, *, force: bool) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        if self._total:
            percent = min(100, self._done * 100 // max(self._total, 1))
            line = f"{self._label}: {percent:3d}% ({_human(self._done)} of {_human(self._total)})"
        else:
            line = f"{self._label}: {_human(self._done)}"
        self.stream.write("\r" + line)
        self.stream.flush()
