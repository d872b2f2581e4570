"""The small protocol every execution backend implements, and what backends share.

Every backend mounts the workspace at :data:`WORKSPACE_PATH` inside the sandbox, so that paths in
outputs are the same on every machine and every run. A backend that cannot honour a policy raises
:class:`~pytest_cleanroom.errors.BackendUnavailableError` from ``check`` (naming what to install
or change) and never runs the command with weaker isolation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..result import RunResult

if TYPE_CHECKING:
    from ..policy import Policy

#: Where the workspace appears inside the sandbox, for every backend.
WORKSPACE_PATH = "/workspace"
#: Backends that mount the workspace into a sandbox, so that
#: :meth:`~pytest_cleanroom.engine.Cleanroom.bind_workspace` can show them another directory there.
BINDING_BACKENDS = frozenset({"bwrap", "unshare"})

#: Names of the limits reported in ``RunResult.limit_exceeded``.
LIMIT_TIMEOUT = "timeout"
LIMIT_MEMORY = "memory"
LIMIT_PROCESSES = "processes"
LIMIT_OPEN_FILES = "open_files"
LIMIT_FILE_SIZE = "file_size"
LIMIT_CPU_TIME = "cpu_time"

#: Exit code of a command whose program does not exist (as in POSIX shells), and of one that
#: exists but cannot be executed.
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126


@dataclass(frozen=True)
class Mount:
    """A host path made visible inside the sandbox at ``target`` (same path when ``None``)."""

    source: Path
    target: str | None = None
    writable: bool = False

    @property
    def destination(self) -> str:
        return self.target if self.target is not None else str(self.source)


@dataclass(frozen=True)
class CommandSpec:
    """Everything a backend needs to run one command. ``env`` is final: the backend adds nothing.

    ``cwd`` is a path inside the sandbox (absolute, usually under :data:`WORKSPACE_PATH`);
    ``workspace`` is the host directory mounted at :data:`WORKSPACE_PATH`; ``timeout`` is the
    wall-clock limit in seconds that applies to this command (the policy's, or an override).
    """

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
    """Runs commands under a policy. ``check`` raises ``BackendUnavailableError`` naming the fix.

    A backend may also define ``close()``: kill every command it is still running (the engine
    calls it from :meth:`Cleanroom.close`, possibly from another thread than ``run``'s), and
    ``cancel()``: the same kill, the backend staying usable (:meth:`Cleanroom.cancel` calls it;
    without it, ``close()``, which must then leave the backend usable too).
    """

    name: str

    def check(self, policy: Policy) -> None: ...

    def run(self, spec: CommandSpec) -> RunResult: ...


def make_result(
    spec: CommandSpec,
    *,
    backend: str,
    exit_code: int,
    stdout: bytes,
    stderr: bytes,
    duration: float,
    started_at: float,
    timed_out: bool = False,
    limit_exceeded: str | None = None,
    peak_memory: int | None = None,
    cpu_time: float | None = None,
) -> RunResult:
    """The :class:`RunResult` of ``spec``: the fields every backend fills the same way."""
    return RunResult(
        command=spec.argv,
        exit_code=exit_code,
        stdout_bytes=stdout,
        stderr_bytes=stderr,
        duration=duration,
        backend=backend,
        policy_name=spec.policy.name,
        policy_digest=spec.policy.digest(),
        seed=spec.seed,
        timed_out=timed_out,
        limit_exceeded=limit_exceeded,
        peak_memory=peak_memory,
        cpu_time=cpu_time,
        workspace=spec.workspace,
        cwd=_relative_cwd(spec.cwd),
        environment=dict(spec.env),
        started_at=started_at,
    )


def _relative_cwd(cwd: str) -> str:
    if cwd == WORKSPACE_PATH:
        return "."
    if cwd.startswith(WORKSPACE_PATH + "/"):
        return cwd[len(WORKSPACE_PATH) + 1 :]
    return cwd


def not_found_message(program: str) -> bytes:
    """The stderr line of a command whose program does not exist (exit code 127)."""
    return f"cleanroom: command not found: {program}\n".encode()


def not_executable_message(program: str, reason: str) -> bytes:
    """The stderr line of a command whose program cannot be executed (exit code 126)."""
    return f"cleanroom: cannot execute {program}: {reason}\n".encode()
