"""Readiness statuses, in order of progress (kept apart so the CLI can list them cheaply)."""

from __future__ import annotations

STATUSES: tuple[str, ...] = ("missing", "placeholder", "needs-review", "complete")
