"""The pydantic models of ``make.toml``: what each table and key may hold.

Used only to validate a file (and to word its errors); the rest of the package works with the
plain objects of :mod:`ggen_lifecycle.model`, which :func:`ggen_lifecycle.config.load_project`
builds from the validated data. Importing pydantic and building these models costs more than
a cached run takes, so a file already validated is not validated again (see config.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from .model import DEFAULT_PLACEHOLDER_PATTERNS, EnvScalar, parse_size


def _one_or_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


StrList = Annotated[list[str], BeforeValidator(_one_or_list)]
#: ``[env.NAME]``: variables, and ``commands.PHASE`` (that phase's commands in NAME).
EnvTableValue = EnvScalar | dict[str, str | list[str]]


def _check_env(value: Any) -> Any:
    """Say which value of which ``[env.NAME]`` is wrong (a union's error would only name NAME)."""
    if not isinstance(value, dict):
        return value
    for name, table in value.items():
        if not isinstance(table, dict):
            continue
        for key, inner in table.items():
            if isinstance(inner, dict) and key != "commands":
                raise ValueError(
                    f"[env.{name}] {key}: a table here is only allowed as commands.PHASE ="
                    ' "..." (that phase\'s commands in this environment); variables are'
                    " strings, numbers or booleans"
                )
            if isinstance(inner, list):
                raise ValueError(
                    f"[env.{name}] {key}: a list is not a variable value (strings, numbers or"
                    " booleans)"
                )
    return value


def _int_as_float(value: Any) -> Any:
    """An integer number of seconds is a float (the models are strict: no coercion otherwise)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 2**53:
        return float(value)
    return value


Seconds = Annotated[float, BeforeValidator(_int_as_float)]


def _service_names(value: list[str]) -> list[str]:
    """Every name is a registered service kind (third parties' included); one error listing
    them, with a did-you-mean, otherwise."""
    from pytest_cleanroom.services.kinds import check_names

    return check_names(value)


#: ``services = [...]``: names of service kinds registered with pytest-cleanroom.
ServiceNames = Annotated[list[str], AfterValidator(_service_names)]
MAX_TIMEOUT = 366 * 24 * 3600.0  # a year: longer cannot be waited for (threading's limit)


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
    description: str = ""
    framework: str | None = None
    runtime: str | None = None
    package_manager: str | None = None
    depends_on: list[str] = Field(default_factory=list)


class CleanroomSpec(Strict):
    enabled: bool = False
    policy: str | dict[str, Any] = "standard"
    services: ServiceNames = Field(default_factory=list)


class PhaseSpec(Strict):
    description: str = ""
    command: str | None = None
    commands: list[str] | None = None
    env: dict[str, EnvScalar | dict[str, EnvScalar | list[str]]] = Field(default_factory=dict)
    cwd: str | None = None
    depends_on: list[str] = Field(default_factory=list)
    workspaces: list[str] | None = None
    parallel: bool = True
    timeout: Seconds | None = Field(None, gt=0, le=MAX_TIMEOUT)
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)
    cache: bool | None = None
    watch: bool | list[str] = False
    port: int | None = Field(None, ge=0, le=65535)
    post: StrList = Field(default_factory=list)
    cleanroom: CleanroomSpec = Field(default_factory=CleanroomSpec)

    @model_validator(mode="after")
    def _one_command_form(self) -> PhaseSpec:
        if self.command is not None and self.commands is not None:
            raise ValueError("give either 'command' or 'commands', not both")
        return self


class Thresholds(Strict):
    min_score: float = Field(80.0, ge=0, le=100)
    max_placeholders: int | None = Field(None, ge=0)
    critical_complete: bool = True

    @field_validator("min_score", mode="before")
    @classmethod
    def _int_score(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


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


class RemoteCacheSpec(Strict):
    """``[cache.remote]``: a Turborepo Remote Cache API server (see docs/scaling.md)."""

    url: str | None = Field(None, pattern=r"^https?://[^\s/]+")
    team: str | None = None
    team_id: str | None = None
    mode: Literal["read-write", "read-only", "off"] = "read-write"
    signature: bool = False
    timeout: Seconds = Field(10.0, gt=0, le=600)


class CacheSpec(Strict):
    max_size: int | str = "1GiB"
    missing_outputs: Literal["warn", "error"] = "warn"
    remote: RemoteCacheSpec = Field(default_factory=RemoteCacheSpec)

    @field_validator("max_size")
    @classmethod
    def _valid_size(cls, value: int | str) -> int | str:
        parse_size(value)
        return value


class ProductionValidationSpec(Strict):
    """``[validation.ENV]``: the steps ``ggen lifecycle validate --env ENV`` runs in a cleanroom,
    and what gates the phases that must not run without a passing validation."""

    steps: list[str] | None = None
    commands: dict[str, StrList] = Field(default_factory=dict)
    policy: str | dict[str, Any] = "strict"
    timeout: Seconds = Field(1800.0, gt=0, le=MAX_TIMEOUT)
    services: ServiceNames = Field(default_factory=list)
    inputs: StrList = Field(default_factory=lambda: ["**"])
    verifies: dict[str, str] = Field(default_factory=dict)
    trusted_keys: StrList = Field(default_factory=list)
    gate: StrList = Field(default_factory=lambda: ["deploy"])

    @field_validator("commands")
    @classmethod
    def _commands_not_empty(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, commands in value.items():
            if not commands or not all(c.strip() for c in commands):
                raise ValueError(f"step {name!r} needs at least one non-empty command")
        return value


class MakeToml(Strict):
    """The root ``make.toml``."""

    project: ProjectInfo = Field(default_factory=ProjectInfo)
    env: Annotated[dict[str, EnvScalar | dict[str, EnvTableValue]], BeforeValidator(_check_env)] = (
        Field(default_factory=dict)
    )
    workspace: dict[str, WorkspaceSpec] = Field(default_factory=dict)
    lifecycle: dict[str, PhaseSpec] = Field(default_factory=dict)
    hooks: dict[str, str | list[str]] = Field(default_factory=dict)
    cache: CacheSpec = Field(default_factory=CacheSpec)
    readiness: ReadinessSpec = Field(default_factory=ReadinessSpec)
    validation: dict[str, ProductionValidationSpec] = Field(default_factory=dict)


class WorkspaceMakeToml(Strict):
    """A workspace's own ``make.toml``: its phases and env take precedence for that workspace."""

    project: ProjectInfo = Field(default_factory=ProjectInfo)
    env: Annotated[dict[str, EnvScalar | dict[str, EnvTableValue]], BeforeValidator(_check_env)] = (
        Field(default_factory=dict)
    )
    lifecycle: dict[str, PhaseSpec] = Field(default_factory=dict)
