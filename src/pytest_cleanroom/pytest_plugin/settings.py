"""The run's cleanroom settings, read once from the flags and ini keys and shared by sub-plugins.

Other sub-plugins (services, scenario, attest) read them with :func:`get_settings`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pytest

from ..policy_levels import LEVEL_FIELDS, level_timeout
from . import options

if TYPE_CHECKING:
    from ..policy import Policy

# Key under which the controller hands its seed to each pytest-xdist worker.
WORKERINPUT_SEED = "cleanroom_seed"


@dataclass(frozen=True)
class CleanroomSettings:
    """What ``--cleanroom-*`` (or the ini keys) decided for this run.

    ``policy`` is the command-line policy: the floor no test can go below. ``timeout`` is the
    ``--cleanroom-timeout`` override (``None``: the policy's own). ``sources`` tells, per setting,
    where its value came from: ``option``, ``ini``, ``default``, ``random`` or ``controller``
    (an xdist worker received it from the controller).
    """

    policy_name: str
    backend: str
    seed: int
    timeout: float | None
    durations: int
    readable_paths: tuple[str, ...] = ()
    per_process_limits: bool = False
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def policy_changes(self) -> dict[str, Any]:
        """What the flags change in the named level: a timeout override, extra readable paths."""
        changes: dict[str, Any] = {}
        if self.timeout is not None and self.timeout != level_timeout(self.policy_name):
            changes["timeout"] = self.timeout
        if self.readable_paths:
            level_paths = LEVEL_FIELDS[self.policy_name].get("readable_paths", ())
            changes["readable_paths"] = (*level_paths, *self.readable_paths)
        return changes

    @property
    def policy_label(self) -> str:
        """The command-line policy's name as :attr:`policy` will carry it (no pydantic needed)."""
        return "+".join([self.policy_name, *sorted(self.policy_changes)])

    @property
    def policy_timeout(self) -> float | None:
        """The command-line policy's wall-clock timeout in seconds (``None``: unlimited)."""
        return self.timeout if self.timeout is not None else level_timeout(self.policy_name)

    @cached_property
    def policy(self) -> Policy:
        """The command-line :class:`~pytest_cleanroom.policy.Policy`, with the flags' changes.

        Built on first use: it imports pydantic, which a run that never sandboxes anything
        need not pay for.
        """
        from ..policy import Policy

        level = Policy.level(self.policy_name)
        changes = self.policy_changes
        return level.replace(**changes) if changes else level


_SETTINGS_KEY = pytest.StashKey[CleanroomSettings]()


def get_settings(config: pytest.Config) -> CleanroomSettings:
    """The run's settings (built on first call; a bad value raises ``pytest.UsageError``)."""
    try:
        return config.stash[_SETTINGS_KEY]
    except KeyError:
        settings = config.stash[_SETTINGS_KEY] = _read_settings(config)
        return settings


def _read_settings(config: pytest.Config) -> CleanroomSettings:
    policy, policy_src = options.read_choice(
        config,
        "cleanroom_policy",
        "cleanroom_policy",
        options.POLICY_CHOICES,
        options.DEFAULT_POLICY,
    )
    backend, backend_src = options.read_choice(
        config,
        "cleanroom_backend",
        "cleanroom_backend",
        options.BACKEND_CHOICES,
        options.DEFAULT_BACKEND,
    )
    timeout, timeout_src = options.read_value(
        config, "cleanroom_timeout", "cleanroom_timeout", options.parse_timeout
    )
    durations, durations_src = options.read_value(
        config, "cleanroom_durations", "cleanroom_durations", options.parse_durations
    )
    seed, seed_src = _read_seed(config)
    per_process, per_process_src = options.read_per_process_limits(config)
    return CleanroomSettings(
        policy_name=policy,
        backend=backend,
        seed=seed,
        timeout=timeout,
        durations=options.DEFAULT_DURATIONS if durations is None else durations,
        readable_paths=options.read_readable_paths(config),
        per_process_limits=per_process,
        sources={
            "per_process_limits": per_process_src,
            "policy": policy_src,
            "backend": backend_src,
            "seed": seed_src,
            "timeout": timeout_src,
            "durations": durations_src,
        },
    )


def _read_seed(config: pytest.Config) -> tuple[int, str]:
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None and WORKERINPUT_SEED in workerinput:
        return int(workerinput[WORKERINPUT_SEED]), "controller"
    seed, source = options.read_value(
        config, "cleanroom_seed", "cleanroom_seed", options.parse_seed
    )
    if seed is not None:
        return seed, source
    # A fresh seed per run; os.urandom keeps the ``random`` module out of pytest's start-up.
    return int.from_bytes(os.urandom(4), "big"), "random"
