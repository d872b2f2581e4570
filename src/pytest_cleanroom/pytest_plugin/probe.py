"""Which backend the run's settings select, how it holds the limits, and whether it can here."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import pytest

from ..backends import availability
from ..policy_levels import level_nests_user_namespaces, level_tree_limits
from .settings import CleanroomSettings, get_settings


@dataclass(frozen=True)
class BackendStatus:
    """``name``: the backend the engine chose (``None`` if none could be); ``error``: why not;
    ``limits``: how it holds the command-line policy's limits; ``passed_over``: why ``auto`` or
    ``local`` did not take the candidates before it."""

    requested: str
    name: str | None
    error: str | None = None
    limits: str | None = None
    passed_over: tuple[str, ...] = ()

    @property
    def available(self) -> bool:
        return self.error is None


_STATUS_KEY = pytest.StashKey[BackendStatus]()


def backend_status(config: pytest.Config) -> BackendStatus:
    """Which backend the run will use and whether it works here (probed once per run).

    The local backends are probed without the engine (cheap enough for the report header),
    Docker through the engine.
    """
    try:
        return config.stash[_STATUS_KEY]
    except KeyError:
        status = config.stash[_STATUS_KEY] = _probe(config)
        return status


def _probe(config: pytest.Config) -> BackendStatus:
    settings = get_settings(config)
    requested = settings.backend
    if requested not in ("auto", "local", "bwrap", "unshare"):
        return _probe_with_engine(settings)
    # Cheap host probes, no engine: what pytest's start-up can afford.
    nested = level_nests_user_namespaces(settings.policy_name)
    reasons: list[str] = []
    if requested == "bwrap":
        name, problem = "bwrap", availability.bwrap_problem(nested_user_namespaces=nested)
    elif requested == "unshare":
        name, problem = "unshare", availability.unshare_problem()
    else:
        found, reasons = availability.first_local_backend(nested_user_namespaces=nested)
        name, problem = found or requested, None
        if found is None:
            problem = "no local backend works here:\n  " + "\n  ".join(reasons)
    if problem is None:
        limits, problem = _local_limits(settings, name)
    if problem is None and requested in ("auto", "local") and _root_without_cgroups():
        # Whether a local backend takes the policy then depends on more than its limits
        # (nested user namespaces, max_processes for uid 0): the backends' own checks decide,
        # so that the header names the backend the commands will really run on.
        return _probe_with_engine(settings)
    if problem is not None and requested == "auto":
        return _probe_with_engine(settings)  # Docker may still honour the policy
    if problem is not None:
        return BackendStatus(requested, None, problem, passed_over=tuple(reasons))
    return BackendStatus(requested, name, None, limits, tuple(reasons))


def _root_without_cgroups() -> bool:
    from .. import cgroups

    return os.geteuid() == 0 and cgroups.parents() is None


def _local_limits(settings: CleanroomSettings, backend: str) -> tuple[str | None, str | None]:
    """(how ``backend`` holds the command-line policy's limits, or why it cannot)."""
    from .. import cgroups

    found = cgroups.parents()
    if found is not None:
        kind = "cgroup2" if set(found) == {cgroups.UNIFIED} else "cgroup1"
        return f"{kind}, for each command's whole process tree", None
    why = cgroups.why_unavailable()
    if not level_tree_limits(settings.policy_name):
        return f"rlimit, per process (no cgroup: {why})", None
    if settings.per_process_limits:
        return (
            f"rlimit, per process, opted in by --cleanroom-per-process-limits (no cgroup: {why}); "
            f"commands record policy {settings.policy_label}+per_process_limits",
            None,
        )
    from ..backends.local import tree_limits_message
    from ..backends.namespace import per_process_fields

    policy = settings.policy
    return None, tree_limits_message(backend, policy, per_process_fields(policy), why)


def _probe_with_engine(settings: CleanroomSettings) -> BackendStatus:
    """Set up a cleanroom under the command-line policy: the only way to ask Docker."""
    try:
        from ..backends.base import ENFORCED_BY_ENGINE
        from ..engine import Cleanroom

        with tempfile.TemporaryDirectory(prefix="cleanroom-probe-") as tmp:
            room = Cleanroom(
                tmp,
                policy=settings.policy,
                backend=settings.backend,
                seed=settings.seed,
                per_process_limits=settings.per_process_limits,
            )
            try:
                name = room.backend_name
                engine = room.backend.limits_enforced_by
                held_by_engine = engine and engine[0] in ENFORCED_BY_ENGINE
                if held_by_engine:
                    limits: str | None = f"{engine[0]}, the container's cgroup"
                else:
                    limits = _local_limits(settings, name)[0]
                return BackendStatus(
                    settings.backend, name, None, limits, tuple(room.backend_reasons)
                )
            finally:
                room.close()
    except Exception as exc:  # reported in the header; collection must go on
        message = str(exc) or type(exc).__name__
        return BackendStatus(settings.backend, None, message)
