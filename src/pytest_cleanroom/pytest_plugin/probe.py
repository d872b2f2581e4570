"""Which backend the run's settings select, and whether it can honour the policy here."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import pytest

from .settings import get_settings


@dataclass(frozen=True)
class BackendStatus:
    """``name``: the backend the engine chose (``None`` if none could be); ``error``: why not."""

    requested: str
    name: str | None
    error: str | None = None

    @property
    def available(self) -> bool:
        return self.error is None


_STATUS_KEY = pytest.StashKey[BackendStatus]()


def backend_status(config: pytest.Config) -> BackendStatus:
    """Ask the engine once per run (cached) to set up a cleanroom under the command-line policy."""
    try:
        return config.stash[_STATUS_KEY]
    except KeyError:
        status = config.stash[_STATUS_KEY] = _probe(config)
        return status


def _probe(config: pytest.Config) -> BackendStatus:
    settings = get_settings(config)
    try:
        from ..engine import Cleanroom

        with tempfile.TemporaryDirectory(prefix="cleanroom-probe-") as tmp:
            room = Cleanroom(
                tmp, policy=settings.policy, backend=settings.backend, seed=settings.seed
            )
            try:
                return BackendStatus(settings.backend, room.backend_name)
            finally:
                room.close()
    except Exception as exc:  # reported in the header; collection must go on
        message = str(exc) or type(exc).__name__
        return BackendStatus(settings.backend, None, message)
