"""``make.toml`` as plain objects: what the runner, graph and commands work with.

These are built from data that :mod:`ggen_lifecycle.schema` (pydantic) has validated, or from
that data as cached after an earlier validation of the same bytes; they do no checking of their
own. Importing this module costs next to nothing (no pydantic, and dataclasses without generated
comparison methods), which keeps a cached run fast. Treat them as read-only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

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
#: The command a standard phase runs in a workspace with ``package_manager`` when no make.toml
#: declares the phase there.
PACKAGE_MANAGER_DEFAULTS: dict[str, dict[str, str]] = {
    "npm": {"setup": "npm install", "build": "npm run build", "test": "npm test",
            "lint": "npm run lint"},
    "pnpm": {"setup": "pnpm install", "build": "pnpm run build", "test": "pnpm test",
             "lint": "pnpm run lint"},
    "yarn": {"setup": "yarn install", "build": "yarn build", "test": "yarn test",
             "lint": "yarn lint"},
    "bun": {"setup": "bun install", "build": "bun run build", "test": "bun test",
            "lint": "bun run lint"},
    "cargo": {"setup": "cargo fetch", "build": "cargo build", "test": "cargo test",
              "lint": "cargo clippy", "docs": "cargo doc", "clean": "cargo clean"},
    "go": {"setup": "go mod download", "build": "go build ./...", "test": "go test ./...",
           "lint": "go vet ./..."},
    "uv": {"setup": "uv sync", "test": "uv run pytest", "lint": "uv run ruff check ."},
    "poetry": {"setup": "poetry install", "test": "poetry run pytest"},
    "pip": {"setup": "pip install -e .", "test": "python -m pytest"},
}  # fmt: skip
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"

EnvScalar = str | int | float | bool
#: ``[env]``: variables, and ``[env.NAME]`` tables of variables and ``commands.PHASE`` entries.
EnvTable = dict[str, EnvScalar | dict[str, EnvScalar | dict[str, str | list[str]]]]


def env_text(value: EnvScalar) -> str:
    """How a TOML scalar is seen by a command: booleans as ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_MAX_SIZE = 2**63  # bytes: sizes must be below it (what a file system can count)


def parse_size(value: int | str) -> int:
    """``"500MB"``, ``"2GiB"``, ``"1g"`` or a number of bytes, as bytes (below 2**63)."""
    if isinstance(value, int):
        result = value
    else:
        match = _SIZE.match(value)
        if match is None:
            shown = value if len(value) <= 64 else value[:40] + "..."
            raise ValueError(f"{shown!r} is not a size such as '500MB' or '2GiB'")
        if len(match.group(1)) > 40:
            raise ValueError(f"{value[:40]!r}...: size must be below 2**63 bytes")
        whole, _, fraction = match.group(1).partition(".")
        base = 1024 if match.group(3) else 1000
        scale = base ** _POWERS[match.group(2).lower()]
        # exact integer arithmetic (no float overflow on long numbers), fractions of a byte cut
        result = int(whole + fraction) * scale // 10 ** len(fraction)
    if result <= 0:
        raise ValueError("size must be positive")
    if result >= _MAX_SIZE:
        raise ValueError("size must be positive and below 2**63 bytes")
    return result


@dataclass(eq=False)
class ProjectInfo:
    name: str | None = None
    type: str | None = None
    version: str | None = None
    description: str = ""


@dataclass(eq=False)
class WorkspaceSpec:
    path: str
    description: str = ""
    framework: str | None = None
    runtime: str | None = None
    package_manager: str | None = None
    depends_on: list[str] = field(default_factory=list)


@dataclass(eq=False)
class CleanroomSpec:
    enabled: bool = False
    policy: str | dict[str, Any] = "standard"
    services: list[str] = field(default_factory=list)


@dataclass(eq=False)
class PhaseSpec:
    description: str = ""
    command: str | None = None
    commands: list[str] | None = None
    #: variables, and ``env.ENV`` tables: variables and ``commands`` under ``--env ENV``
    env: dict[str, EnvScalar | dict[str, EnvScalar | list[str]]] = field(default_factory=dict)
    cwd: str | None = None
    depends_on: list[str] = field(default_factory=list)
    workspaces: list[str] | None = None
    parallel: bool = True
    timeout: float | None = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    cache: bool | None = None
    #: ``true`` (a dev phase; ``--watch`` watches its inputs) or the globs ``--watch`` watches
    watch: bool | list[str] = False
    port: int | None = None
    post: list[str] = field(default_factory=list)
    cleanroom: CleanroomSpec = field(default_factory=CleanroomSpec)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhaseSpec:
        fields = dict(data)
        fields["cleanroom"] = CleanroomSpec(**fields.get("cleanroom", {}))
        return cls(**fields)

    def command_list(self) -> list[str]:
        """The commands in order (``command`` is a list of one)."""
        if self.command is not None:
            return [self.command]
        return list(self.commands or [])

    @property
    def cache_enabled(self) -> bool:
        """``cache`` if set, else on exactly when inputs are declared."""
        return self.cache if self.cache is not None else bool(self.inputs)


@dataclass(eq=False)
class Thresholds:
    min_score: float = 80.0
    max_placeholders: int | None = None
    critical_complete: bool = True


@dataclass(eq=False)
class ReadinessSpec:
    patterns: list[str] = field(default_factory=lambda: list(DEFAULT_PLACEHOLDER_PATTERNS))
    include: list[str] = field(default_factory=lambda: ["**/*"])
    exclude: list[str] = field(default_factory=list)
    thresholds: dict[str, Thresholds] = field(default_factory=dict)


@dataclass(eq=False)
class ProductionValidationSpec:
    """``[validation.ENV]``: see docs/lifecycle.md, "Production validation in a cleanroom"."""

    steps: list[str] | None = None
    commands: dict[str, list[str]] = field(default_factory=dict)
    policy: str | dict[str, Any] = "strict"
    timeout: float = 1800.0
    services: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=lambda: ["**"])
    verifies: dict[str, str] = field(default_factory=dict)
    trusted_keys: list[str] = field(default_factory=list)
    gate: list[str] = field(default_factory=lambda: ["deploy"])


@dataclass(eq=False)
class RemoteCacheSpec:
    url: str | None = None
    team: str | None = None
    team_id: str | None = None
    mode: str = "read-write"
    signature: bool = False
    timeout: float = 10.0


@dataclass(eq=False)
class CacheSpec:
    max_size: int | str = "1GiB"
    missing_outputs: str = "warn"  # or "error"
    remote: RemoteCacheSpec = field(default_factory=RemoteCacheSpec)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CacheSpec:
        fields = dict(data)
        fields["remote"] = RemoteCacheSpec(**fields.get("remote", {}))
        return cls(**fields)

    @property
    def max_bytes(self) -> int:
        return parse_size(self.max_size)


@dataclass(eq=False)
class WorkspaceMakeToml:
    """A workspace's own ``make.toml``: its phases and env take precedence for that workspace."""

    project: ProjectInfo = field(default_factory=ProjectInfo)
    env: EnvTable = field(default_factory=dict)
    lifecycle: dict[str, PhaseSpec] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkspaceMakeToml:
        """From validated data (``schema.WorkspaceMakeToml(...).model_dump()``)."""
        return cls(
            project=ProjectInfo(**data["project"]),
            env=data["env"],
            lifecycle={k: PhaseSpec.from_dict(v) for k, v in data["lifecycle"].items()},
            warnings=list(data.get("warnings", [])),
        )


@dataclass(eq=False)
class MakeToml:
    """The root ``make.toml``."""

    project: ProjectInfo = field(default_factory=ProjectInfo)
    env: EnvTable = field(default_factory=dict)
    workspace: dict[str, WorkspaceSpec] = field(default_factory=dict)
    lifecycle: dict[str, PhaseSpec] = field(default_factory=dict)
    hooks: dict[str, str | list[str]] = field(default_factory=dict)
    cache: CacheSpec = field(default_factory=CacheSpec)
    readiness: ReadinessSpec = field(default_factory=ReadinessSpec)
    validation: dict[str, ProductionValidationSpec] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # keys ignored when the file was read

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MakeToml:
        """From validated data (``schema.MakeToml(...).model_dump()``)."""
        readiness = dict(data["readiness"])
        readiness["thresholds"] = {k: Thresholds(**v) for k, v in readiness["thresholds"].items()}
        return cls(
            project=ProjectInfo(**data["project"]),
            env=data["env"],
            workspace={k: WorkspaceSpec(**v) for k, v in data["workspace"].items()},
            lifecycle={k: PhaseSpec.from_dict(v) for k, v in data["lifecycle"].items()},
            hooks=data["hooks"],
            cache=CacheSpec.from_dict(data["cache"]),
            readiness=ReadinessSpec(**readiness),
            validation={
                k: ProductionValidationSpec(**v) for k, v in data.get("validation", {}).items()
            },
            warnings=list(data.get("warnings", [])),
        )
