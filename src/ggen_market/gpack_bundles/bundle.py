"""What the loader found: the verified test gpacks of a project (standard library only)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class Bundle:
    """One installed, verified test gpack: its ``[cleanroom]`` floor, scenarios and fixtures."""

    id: str
    version: str
    root: Path
    policy: str
    timeout: float | None = None
    #: Policy fields ``[cleanroom]`` sets on top of the level (network, filesystem, memory, CPU).
    policy_fields: Mapping[str, Any] = field(default_factory=dict)
    services: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    backend: str = "auto"
    scenarios: tuple[Path, ...] = ()
    fixtures: tuple[Path, ...] = ()

    @property
    def label(self) -> str:
        """``id@version``."""
        return f"{self.id}@{self.version}"

    @property
    def nodeid(self) -> str:
        """The node id of the pack's collector: ``gpack:id@version``."""
        return f"gpack:{self.label}"

    def plugin_name(self, module: Path) -> str:
        """The name a fixtures module is registered (and imported) under: unique per pack."""
        return f"{self.nodeid}/{module.relative_to(self.root).as_posix()}"


@dataclass(frozen=True)
class GpackRun:
    """The run's test gpacks and whether their scenarios are part of its collection."""

    project: Path
    bundles: tuple[Bundle, ...]
    collect_scenarios: bool
    roots: frozenset[Path] = field(init=False)

    def __post_init__(self) -> None:
        roots = {b.root for b in self.bundles} | {b.root.resolve() for b in self.bundles}
        object.__setattr__(self, "roots", frozenset(roots))


RUN_KEY = pytest.StashKey[GpackRun]()
