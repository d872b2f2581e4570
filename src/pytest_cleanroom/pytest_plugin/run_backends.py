"""The run's backends: one instance of each reusable backend, shared by the tests' cleanrooms.

A reusable backend (``Backend.reusable``: the namespace backends) keeps nothing of a command or
a cleanroom between them, only what is costly to make: a launcher waiting in fresh cgroups for
the next command, the probes of what the host can do. Shared by the tests of a run, a test's
first command starts from the launcher made while the test before it ran, and a test's set-up
and teardown make and discard nothing. Each test's cleanroom still kills its own commands when
it closes, and the run waits at each test's end until the cgroups of its commands are empty.
The instances are closed when the run ends.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from .settings import CleanroomSettings

if TYPE_CHECKING:
    from ..backends.base import Backend
    from ..policy import Policy

_KEY = pytest.StashKey["RunBackends"]()


class RunBackends:
    """Which backend each policy of the run gets (chosen once per policy), and the shared
    instances of the reusable ones."""

    def __init__(self, settings: CleanroomSettings) -> None:
        self._settings = settings
        self._lock = threading.Lock()
        self._chosen: dict[str, tuple[Backend | None, tuple[str, ...]]] = {}
        self._shared: dict[str, Backend] = {}
        self._closed = False

    def backend_for(self, policy: Policy) -> tuple[Backend | str, tuple[str, ...]]:
        """``(backend, why auto passed the candidates before it over)`` for commands under
        ``policy``: the run's shared instance, or the backend's name where it is not reusable
        (each cleanroom then makes its own). Raises ``BackendUnavailableError`` as
        :class:`~pytest_cleanroom.engine.Cleanroom` would."""
        key = policy.digest()
        with self._lock:
            if self._closed:
                return self._settings.backend, ()
            chosen = self._chosen.get(key)
            if chosen is None:
                chosen = self._chosen[key] = self._choose(policy)
        shared, reasons = chosen
        return (self._settings.backend if shared is None else shared), reasons

    def _choose(self, policy: Policy) -> tuple[Backend | None, tuple[str, ...]]:
        from ..backends import select_backend

        settings = self._settings
        backend, reasons = select_backend(
            settings.backend, policy, per_process_limits=settings.per_process_limits
        )
        if not backend.reusable:
            backend.close()
            return None, tuple(reasons)
        shared = self._shared.setdefault(backend.name, backend)
        if shared is not backend:  # another policy chose the same backend first
            backend.close()
        return shared, tuple(reasons)

    def after_test(self) -> None:
        """Wait until the cgroups of the test's commands are empty (their processes were
        killed when each command ended), as closing a backend of its own would."""
        if self._shared:
            from .. import cgroups

            cgroups.flush()

    def close(self) -> None:
        """Close the shared instances; cleanrooms made later choose and own their backend."""
        with self._lock:
            self._closed = True
            shared = list(self._shared.values())
            self._shared.clear()
            self._chosen.clear()
        for backend in shared:
            backend.close()


def run_backends(config: pytest.Config, settings: CleanroomSettings) -> RunBackends:
    """The run's :class:`RunBackends` (made on first use)."""
    return config.stash.setdefault(_KEY, RunBackends(settings))  # making one costs nothing


def close_run_backends(config: pytest.Config) -> None:
    """Close the run's shared backends, if any were made."""
    found = config.stash.get(_KEY, None)
    if found is not None:
        found.close()
