"""Which backend the run's settings select, and whether it can honour the policy here."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import pytest

from ..backends import availability
from ..policy_levels import level_nests_user_namespaces
from .settings import CleanroomSettings, get_settings


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
    """Which backend the run will use and whether it works here (probed once per run).

    The local backends are probed without the engine (cheap enough for the report header); a
    policy limit a backend cannot enforce is reported by the engine at the first command.
    """
    try:
        return config.stash[_STATUS_KEY]
    except KeyError:
        status = config.stash[_STATUS_KEY] = _probe(config)
        return status


def _probe(config: pytest.Config) -> BackendStatus:
    settings = get_settings(config)
    requested = settings.backend
    if requested in ("auto", "local", "bwrap", "unshare"):
        # Cheap host probes, no pydantic and no engine: what pytest's start-up can afford. The
        # limits of the policy are checked by the engine at the first command.
        nested = level_nests_user_namespaces(settings.policy_name)
        if requested == "bwrap":
            problem = availability.bwrap_problem(nested_user_namespaces=nested)
            return BackendStatus(requested, None if problem else "bwrap", problem)
        if requested == "unshare":
            problem = availability.unshare_problem()
            return BackendStatus(requested, None if problem else "unshare", problem)
        name, reasons = availability.first_local_backend(nested_user_namespaces=nested)
        if name is not None or requested == "local":
            error = None if name else "no local backend works here:\n  " + "\n  ".join(reasons)
            return BackendStatus(requested, name, error)
    return _probe_with_engine(settings)


def _probe_with_engine(settings: CleanroomSettings) -> BackendStatus:
    """Set up a cleanroom under the command-line policy: the only way to ask Docker."""
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
