"""Limits that users may change through environment variables (``GGEN_HTTP_DEADLINE``, ...)."""

from __future__ import annotations

import os

from .errors import MarketError


def env_number(name: str, default: float, error: type[MarketError]) -> float:
    """The positive number in ``$name``, ``default`` when unset; ``error`` naming it otherwise."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e15:
        raise error(f"{name}={raw!r}: expected a positive number")
    return value
