"""Building the second cleanroom of the repeat check: the test's own, re-rooted in a copy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .repeat import RepeatChecker

if TYPE_CHECKING:
    from ..engine import Cleanroom


def replay_factory(cleanroom: Cleanroom) -> Callable[[Path], Cleanroom]:
    """A function that makes, for a directory, a cleanroom like ``cleanroom`` rooted there:
    same class, policy, backend, seed, timeout and environment; no listeners, so the replay is
    not reported as a command of the test."""
    room: Any = cleanroom
    kwargs: dict[str, Any] = {
        "policy": room.policy,
        "backend": room.backend,
        "seed": room.seed,
        "timeout": room.timeout,
        "env": room.env,
    }
    if hasattr(room, "floor"):
        kwargs["floor"] = room.floor

    def make(root: Path) -> Cleanroom:
        replica: Cleanroom = type(cleanroom)(root, **kwargs)
        return replica

    return make


def attach_repeat_checker(cleanroom: Cleanroom) -> RepeatChecker:
    """Turn the repeat check on for every command run through ``cleanroom``."""
    return RepeatChecker(cleanroom, replay_factory(cleanroom)).attach()
