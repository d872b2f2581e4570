"""The ``[cleanroom]``, ``[fixtures]`` and ``[scenarios]`` sections of test gpacks' gpack.toml.

:class:`ggen_market.manifest.Manifest` validates these tables with the models here, imported
(and built by pydantic) only when a manifest has one of them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .manifest import PatternSection, _Section


class CleanroomSection(_Section):
    """``[cleanroom]`` (test gpacks): how their scenarios run by default."""

    policy: Literal["permissive", "standard", "strict", "locked"] = "standard"
    backend: Literal["auto", "local", "docker"] = "auto"
    timeout: float | None = Field(None, gt=0)
    services: list[Literal["postgres", "redis"]] = []
    env: dict[str, str] = {}


class FixturesSection(PatternSection):
    """``[fixtures]`` (test gpacks): Python modules defining pytest fixtures."""

    patterns: list[str] = ["fixtures/**/*.py"]


class ScenariosSection(PatternSection):
    """``[scenarios]`` (test gpacks): ``*.scenario.toml`` files."""

    patterns: list[str] = ["scenarios/**/*.scenario.toml"]
