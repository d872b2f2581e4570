"""The small protocol every execution backend implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..policy import Policy
from ..result import RunResult


@dataclass(frozen=True)
class Mount:
    """A host path made visible inside the sandbox at ``target`` (same path when ``None``)."""

    source: Path
    target: str | None = None
    writable: bool = False


@dataclass(frozen=True)
class CommandSpec:
    """Everything a backend needs to run one command. ``env`` is final: the backend adds nothing."""

    argv: tuple[str, ...]
    workspace: Path
    cwd: str
    env: Mapping[str, str]
    policy: Policy
    seed: int
    timeout: float | None
    stdin: bytes | None = None
    mounts: tuple[Mount, ...] = field(default_factory=tuple)


@runtime_checkable
class Backend(Protocol):
    """Runs commands under a policy. ``check`` raises ``BackendUnavailableError`` naming the fix."""

    name: str

    def check(self, policy: Policy) -> None: ...

    def run(self, spec: CommandSpec) -> RunResult: ...
