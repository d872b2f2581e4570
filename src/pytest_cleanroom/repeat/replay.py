"""Building the second cleanroom of the repeat check: the test's own, re-rooted in a copy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .checker import RepeatChecker

if TYPE_CHECKING:
    from ..engine import Cleanroom


class Replicas:
    """Gives, for the copy's directory, a cleanroom like ``cleanroom`` rooted there: same class
    (so the pytest fixture's policy floor applies alike), policy, backend, seed, timeout,
    environment and exposed services; no listeners, so the replay is not reported as a command
    of the test. A twin is built once per directory and reused."""

    def __init__(self, cleanroom: Cleanroom) -> None:
        self.cleanroom = cleanroom
        self.twins: dict[Path, Cleanroom] = {}

    def __call__(self, root: Path) -> Cleanroom:
        twin = self.twins.get(root)
        if twin is None:
            # replica() keeps the pytest fixture's floor and the directories the test owns.
            twin = self.twins[root] = self.cleanroom.replica(root)
            twin.prepare_ahead()  # while the first run goes on
        twin.services = dict(self.cleanroom.services)  # services exposed since are replayed too
        return twin

    def close(self) -> None:
        for twin in self.twins.values():
            twin.close()
        self.twins.clear()


def attach_repeat_checker(cleanroom: Cleanroom, *, copy_on_write: bool = True) -> RepeatChecker:
    """Turn the repeat check on for every command run through ``cleanroom``; with
    ``copy_on_write=False`` its runs start from a copy of the workspace even where overlay
    mounts could be used."""
    checker = RepeatChecker(cleanroom, Replicas(cleanroom), copy_on_write=copy_on_write)
    return checker.attach()
