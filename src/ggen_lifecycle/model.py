"""The pydantic models of ``make.toml``: what each table and key may hold."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

STANDARD_PHASES: tuple[str, ...] = (
    "init",
    "setup",
    "build",
    "test",
    "lint",
    "docs",
    "deploy",
    "clean",
)
SERVICES: tuple[str, ...] = ("postgres", "redis")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

EnvScalar = str | int | float | bool


def env_text(value: EnvScalar) -> str:
    """How a TOML scalar is seen by a command: booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Strict(BaseModel):
    """Unknown keys are errors; values are not coerced across types."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ProjectInfo(Strict):
    name: str | None = None
    type: str | None = None
    version: str | None = None
    description: str = ""


class WorkspaceSpec(Strict):
    path: str
    framework: str | None = None
    runtime: str | None = None
    depends_on: list[str] = Field(default_factory=list)


class CleanroomSpec(Strict):
    enabled: bool = False
    policy: str | dict[str, Any] = "standard"
    services: list[Literal["postgres", "redis"]] = Field(default_factory=list)


class PhaseSpec(Strict):
    description: str = ""
    command: str | None = None
    commands: list[str] | None = None
    env: dict[str, EnvScalar] = Field(default_factory=dict)
    cwd: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    workspaces: list[str] | None = None
    parallel: bool = True
    timeout: float | None = Field(None, gt=0)
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    cache: bool | None = None
    cleanroom: CleanroomSpec = Field(default_factory=CleanroomSpec)

    @field_validator("timeout", mode="before")
    @classmethod
    def _int_timeout(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _one_command_form(self) -> PhaseSpec:
        if self.command is not None and self.commands is not None:
            raise ValueError("give either 'command' or 'commands', not both")
        return self

    def command_list(self) -> list[str]:
        """The commands in order (``command`` is a list of one)."""
        if self.command is not None:
            return [self.command]
        return list(self.commands or [])

    @property
    def cache_enabled(self) -> bool:
        """``cache`` if set, else on exactly when inputs are declared."""
        return self.cache if self.cache is not None else bool(self.inputs)


class Thresholds(Strict):
    min_score: float = Field(80.0, ge=0, le=100)
    max_placeholders: int | None = Field(None, ge=0)
    critical_complete: bool = True

    @field_validator("min_score", mode="before")
    @classmethod
    def _int_score(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


DEFAULT_PLACEHOLDER_PATTERNS: tuple[str, ...] = (
    r"\bTODO\b",
    r"\bFIXME\b",
    r"\bXXX\b",
    r"\bHACK\b",
    r"raise NotImplementedError",
    r"unimplemented!\(",
    r"todo!\(",
    r"(?i)\bplaceholder\b",
)


class ReadinessSpec(Strict):
    patterns: list[str] = Field(default_factory=lambda: list(DEFAULT_PLACEHOLDER_PATTERNS))
    include: list[str] = Field(default_factory=lambda: ["**/*"])
    exclude: list[str] = Field(default_factory=list)
    thresholds: dict[str, Thresholds] = Field(default_factory=dict)

    @field_validator("patterns")
    @classmethod
    def _valid_regexes(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"pattern {pattern!r} is not a valid regular expression: {exc}"
                ) from None
        return value


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(value: int | str) -> int:
    """``"500MB"``, ``"2GiB"``, ``"1g"`` or a number of bytes, as bytes."""
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("size must be positive")
        return value
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a size such as '500MB' or '2GiB'")
    base = 1024 if match.group(3) else 1000
    result = int(float(match.group(1)) * base ** _POWERS[match.group(2).lower()])
    if result <= 0:
        raise ValueError("size must be positive")
    return result


class CacheSpec(Strict):
    max_size: int | str = "1GiB"

    @field_validator("max_size")
    @classmethod
    def _valid_size(cls, value: int | str) -> int | str:
        parse_size(value)
        return value

    @property
    def max_bytes(self) -> int:
        return parse_size(self.max_size)


class MakeToml(Strict):
    """The root ``make.toml``."""

    project: ProjectInfo = Field(default_factory=ProjectInfo)
    env: dict[str, EnvScalar | dict[str, EnvScalar]] = Field(default_factory=dict)
    workspace: dict[str, WorkspaceSpec] = Field(default_factory=dict)
    lifecycle: dict[str, PhaseSpec] = Field(default_factory=dict)
    hooks: dict[str, str | list[str]] = Field(default_factory=dict)
    cache: CacheSpec = Field(default_factory=CacheSpec)
    readiness: ReadinessSpec = Field(default_factory=ReadinessSpec)


class WorkspaceMakeToml(Strict):
    """A workspace's own ``make.toml``: its phases and env take precedence for that workspace."""

    project: ProjectInfo = Field(default_factory=ProjectInfo)
    env: dict[str, EnvScalar | dict[str, EnvScalar]] = Field(default_factory=dict)
    lifecycle: dict[str, PhaseSpec] = Field(default_factory=dict)


def top_level_keys(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)
