"""The market's crash points: ``GGEN_MARKET_CRASH_AT=N`` (see :mod:`pytest_cleanroom.faults`)."""

from __future__ import annotations

from pytest_cleanroom import faults


def crash_point(name: str) -> None:
    """Die here if ``GGEN_MARKET_CRASH_AT`` names this point."""
    faults.crash_point(name, "GGEN_MARKET")
