"""The cleanroom policy of a production validation: at least as isolated as ``strict``.

Resource limits (time, memory, processes, files, disk, CPU, output) may be set to whatever the
project needs; what isolates the steps (network, file system view, privileges, environment) may
only be tightened. Read-only ``readable_paths`` (a toolchain outside ``/usr``) are allowed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_cleanroom.policy import Policy

FLOOR = "strict"
#: Fields a project may raise above ``strict``'s values: they size the steps, they do not
#: decide what the steps can see or reach.
ADJUSTABLE = frozenset(
    {
        "timeout",
        "memory_limit",
        "max_processes",
        "max_open_files",
        "max_file_size",
        "max_disk",
        "cpu_time_limit",
        "cpu_quota",
        "max_output",
        "readable_paths",
    }
)


class PolicyFloorError(ValueError):
    """The policy is not valid, or is weaker than ``strict`` in a field that isolates."""


def production_policy(value: str | dict[str, Any]) -> Policy:
    """The policy ``[validation.ENV] policy`` describes; :class:`PolicyFloorError` names the
    fields that would make it weaker than ``strict``."""
    from pytest_cleanroom.errors import PolicyError
    from pytest_cleanroom.policy import Policy

    if isinstance(value, dict) and "level" not in value and "name" not in value:
        value = {"level": FLOOR, **value}
    try:
        policy = Policy.coerce(value)
    except PolicyError as exc:
        raise PolicyFloorError(str(exc)) from None
    weaker = [f for f in policy.weakened_fields(Policy.level(FLOOR)) if f not in ADJUSTABLE]
    if weaker:
        shown = ", ".join(f"{f} = {getattr(policy, f)!r}" for f in weaker)
        raise PolicyFloorError(
            f"it is weaker than {FLOOR!r} in {shown}: production validation isolates at least as "
            f"much as {FLOOR!r} (only resource limits and readable_paths may be raised); remove "
            f"{'them' if len(weaker) > 1 else 'it'}"
        )
    return policy
