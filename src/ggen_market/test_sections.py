"""The ``[cleanroom]``, ``[fixtures]`` and ``[scenarios]`` sections of test gpacks' gpack.toml.

:class:`ggen_market.manifest.Manifest` validates these tables with the models here, imported
(and built by pydantic) only when a manifest has one of them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from pytest_cleanroom.config_errors.suggest import did_you_mean

from .manifest import PatternSection, _Section, check_pattern

Level = Literal["permissive", "standard", "strict", "locked"]

#: The seed's ``security_level`` names (clnrm's ``SecurityLevel``) -> the policy level they mean.
SECURITY_LEVELS: dict[str, str] = {
    "low": "permissive",
    "medium": "standard",
    "standard": "standard",
    "high": "strict",
    "strict": "strict",
    "maximum": "locked",
    "locked": "locked",
    "permissive": "permissive",
}
MiB = 1024 * 1024


class CleanroomSection(_Section):
    """``[cleanroom]`` (test gpacks): how their scenarios run by default.

    The seed's form (``security_level``, ``enable_network_isolation``,
    ``enable_filesystem_isolation``, ``max_memory_mb``, ``max_cpu_percent``) maps onto the same
    policy: see :attr:`level` and :meth:`policy_changes`. It may tighten the level, never loosen it.
    """

    policy: Level | None = None
    security_level: str | None = None
    backend: Literal["auto", "local", "docker"] = "auto"
    timeout: float | None = Field(None, gt=0)
    services: list[str] = []
    env: dict[str, str] = {}
    enable_network_isolation: bool | None = None
    enable_filesystem_isolation: bool | None = None
    max_memory_mb: int | None = Field(None, gt=0)
    max_cpu_percent: float | None = Field(None, gt=0, le=100)

    @field_validator("services")
    @classmethod
    def _services(cls, value: list[str]) -> list[str]:
        from pytest_cleanroom.services.kinds import check_names

        return check_names(value)  # every registered kind, third parties' included

    @field_validator("security_level")
    @classmethod
    def _security_level(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in SECURITY_LEVELS:
            names = ["Low", "Medium", "High", "Maximum", "Standard", "Locked"]
            hint = did_you_mean(value, names, aside=True)
            raise ValueError(f"{value!r} is not a security level{hint} (one of {', '.join(names)})")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> CleanroomSection:
        mapped = SECURITY_LEVELS[self.security_level.lower()] if self.security_level else None
        if mapped and self.policy and mapped != self.policy:
            raise ValueError(
                f"security_level {self.security_level!r} means policy {mapped!r}, but policy is"
                f" {self.policy!r}: keep one of them"
            )
        from pytest_cleanroom.policy import Policy

        base = Policy.level(self.level)
        if self.enable_network_isolation is False and base.network == "isolated":
            raise ValueError(
                f"enable_network_isolation = false would loosen level {self.level!r}, which"
                " isolates the network; remove it, or choose a lower level"
            )
        if self.enable_filesystem_isolation is False and base.hidden_paths:
            raise ValueError(
                f"enable_filesystem_isolation = false would loosen level {self.level!r}, which"
                ' hides the host\'s data; remove it, or choose security_level = "Low"'
            )
        return self

    @property
    def level(self) -> str:
        """The named policy level: ``policy``, else what ``security_level`` maps to."""
        if self.policy:
            return self.policy
        return SECURITY_LEVELS[self.security_level.lower()] if self.security_level else "standard"

    def policy_changes(self) -> dict[str, Any]:
        """Policy fields the seed keys set on top of :attr:`level` (each only tightens it)."""
        from pytest_cleanroom.policy import DEFAULT_HIDDEN

        changes: dict[str, Any] = {}
        if self.enable_network_isolation:
            changes["network"] = "isolated"
        if self.enable_filesystem_isolation:
            changes.update(read_only_root=True, private_tmp=True, hidden_paths=DEFAULT_HIDDEN)
        if self.max_memory_mb is not None:
            changes["memory_limit"] = self.max_memory_mb * MiB
        if self.max_cpu_percent is not None:  # percent of one CPU: 80.0 is 0.8 CPU per period
            changes["cpu_quota"] = self.max_cpu_percent / 100
        return changes


class FixturesSection(PatternSection):
    """``[fixtures]`` (test gpacks): Python modules defining pytest fixtures."""

    patterns: list[str] = ["fixtures/**/*.py"]


class ScenariosSection(PatternSection):
    """``[scenarios]`` (test gpacks): ``*.scenario.toml`` / ``.yaml`` files matched by
    ``patterns``, and named files (the seed's form: ``integration = "scenarios/x.yaml"``)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    patterns: list[str] = [
        "scenarios/**/*.scenario.toml",
        "scenarios/**/*.scenario.yaml",
        "scenarios/**/*.scenario.yml",
    ]

    @model_validator(mode="after")
    def _named_files(self) -> ScenariosSection:
        for key, value in self.named.items():
            hint = did_you_mean(key, ["patterns"], aside=True)
            if hint:
                raise ValueError(f"{key}: unknown key{hint}")
            if not isinstance(value, str):
                raise ValueError(
                    f"{key}: a named scenario file is a path in the gpack, e.g."
                    f' {key} = "scenarios/{key}.yaml" (got {type(value).__name__})'
                )
            check_pattern(value)
        return self

    @property
    def named(self) -> dict[str, Any]:
        """``name = "path"`` entries besides ``patterns``."""
        return dict(self.model_extra or {})
