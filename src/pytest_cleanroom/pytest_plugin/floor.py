"""The command-line policy is a floor: tests may tighten it, never weaken it.

A ``@pytest.mark.cleanroom(...)`` marker and a ``policy=`` / ``timeout=`` given to
``cleanroom.run`` are both reconciled here with :meth:`Policy.tightened_by`; whatever was asked
for beyond the floor is refused with a :class:`CleanroomPolicyWarning` naming the fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from ..errors import PolicyError
from ..policy import Policy


class CleanroomPolicyWarning(pytest.PytestWarning):
    """A test asked for a weaker policy than the command line's; it ran under the stricter one."""


class FloorError(PolicyError):
    """Test code asked a command to see more than the command-line policy lets it see (a
    directory it does not own, a socket that is not one of the run's services)."""


class MarkerError(PolicyError):
    """A ``cleanroom`` marker names an unknown level or field, or has a malformed argument."""


def policy_from_marker(mark: pytest.Mark, floor: Policy) -> Policy:
    """The policy one marker asks for: its ``policy`` (else the floor) with its fields applied."""
    if len(mark.args) > 1 or (mark.args and "policy" in mark.kwargs):
        raise MarkerError(
            "takes at most one policy: @pytest.mark.cleanroom('strict') or "
            "@pytest.mark.cleanroom(policy='strict', **fields)"
        )
    fields: dict[str, Any] = dict(mark.kwargs)
    level = mark.args[0] if mark.args else fields.pop("policy", None)
    unknown = sorted(set(fields) - set(Policy.model_fields) - {"name"})
    if unknown:
        raise MarkerError(
            f"unknown policy field {', '.join(map(repr, unknown))}: "
            f"the fields are {', '.join(f for f in Policy.model_fields if f != 'name')}"
        )
    try:
        base = floor if level is None else Policy.coerce(level)
        return base.replace(**fields) if fields else base
    except PolicyError as exc:
        raise MarkerError(str(exc)) from exc


def effective_policy(markers: list[pytest.Mark], floor: Policy) -> tuple[Policy, list[str]]:
    """(policy a test runs under, fields its markers asked to weaken) for ``markers``.

    Every marker (module, class and function level) tightens the floor; none can weaken it.
    """
    effective = floor
    weakened: list[str] = []
    for mark in markers:
        requested = policy_from_marker(mark, floor)
        effective = effective.tightened_by(requested)
        weakened += [f for f in requested.weakened_fields(floor) if f not in weakened]
    return effective, weakened


def marker_warning(nodeid: str, floor: Policy, weakened: list[str]) -> CleanroomPolicyWarning:
    return CleanroomPolicyWarning(
        f"{nodeid}: @pytest.mark.cleanroom asks for a weaker policy than the command line's "
        f"{floor.name!r} in: {', '.join(weakened)}; the test runs under the stricter values "
        f"(a test may tighten --cleanroom-policy, never weaken it)"
    )


def clamp_run(
    floor: Policy,
    policy: Policy | str | Mapping[str, Any] | None,
    timeout: float | None,
) -> tuple[Policy | None, float | None, list[str]]:
    """Reconcile ``cleanroom.run(policy=..., timeout=...)`` with the floor.

    Returns the policy and timeout to run with and the fields that were refused.
    """
    refused: list[str] = []
    final: Policy | None = None
    if policy is not None:
        requested = Policy.coerce(dict(policy) if isinstance(policy, Mapping) else policy)
        refused = requested.weakened_fields(floor)
        final = floor.tightened_by(requested)
    if timeout is not None and floor.timeout is not None and timeout > floor.timeout:
        timeout = floor.timeout
        if "timeout" not in refused:
            refused.append("timeout")
    return final, timeout, refused


def run_warning(
    floor: Policy, refused: list[str], what: str = "cleanroom.run"
) -> CleanroomPolicyWarning:
    return CleanroomPolicyWarning(
        f"{what} asked for a weaker policy than the command line's {floor.name!r} in: "
        f"{', '.join(refused)}; the command runs under the stricter values "
        f"(a test may tighten --cleanroom-policy, never weaken it)"
    )
