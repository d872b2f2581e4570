"""The small protocol every execution backend implements, and what backends share.

Every backend mounts the workspace at :data:`WORKSPACE_PATH` inside the sandbox, so that paths in
outputs are the same on every machine and every run. A backend that cannot honour a policy raises
:class:`~pytest_cleanroom.errors.BackendUnavailableError` from ``check`` (naming what to install
or change) and never runs the command with weaker isolation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ..result import RunResult

if TYPE_CHECKING:
    from ..policy import Policy

#: Where the workspace appears inside the sandbox, for every backend.
WORKSPACE_PATH = "/workspace"

#: Names of the limits reported in ``RunResult.limit_exceeded``.
LIMIT_TIMEOUT = "timeout"
LIMIT_MEMORY = "memory"
LIMIT_PROCESSES = "processes"
LIMIT_OPEN_FILES = "open_files"
LIMIT_FILE_SIZE = "file_size"
LIMIT_CPU_TIME = "cpu_time"
LIMIT_OUTPUT = "output"

#: Values of ``RunResult.limits_enforcement``: what enforced a command's limits.
ENFORCED_BY_CGROUP1 = "cgroup1"
ENFORCED_BY_CGROUP2 = "cgroup2"
ENFORCED_BY_RLIMIT = "rlimit"
ENFORCED_BY_DOCKER = "docker"
ENFORCED_BY_PODMAN = "podman"
#: Values that name a container engine, which held the limits in the container's cgroups.
ENFORCED_BY_ENGINE = frozenset({ENFORCED_BY_DOCKER, ENFORCED_BY_PODMAN})

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


class CappedStream:
    """One output stream of a command as kept on the host: at most ``limit`` bytes (``None``:
    all of them); what comes past the limit is dropped, so host memory stays bounded."""

    def __init__(self, limit: int | None) -> None:
        self._chunks: list[bytes] = []
        self._room = limit
        self.overflowed = False

    def add(self, data: bytes) -> bool:
        """Keep what fits of ``data``; True once the stream has gone past its limit."""
        room = self._room
        if room is None:
            self._chunks.append(data)
            return False
        if room:
            self._chunks.append(data[:room])
        if len(data) > room:
            self.overflowed = True
        self._room = max(0, room - len(data))
        return self.overflowed

    def take(self, suffix: bytes = b"") -> bytes:
        """What was kept, followed by ``suffix``; the stream lets go of its own copy, so that
        the host never holds more than two copies of a stream at once."""
        chunks, self._chunks = self._chunks, []
        chunks.append(suffix)
        return b"".join(chunks)


class Backend(ABC):
    """Runs commands under a policy: the whole lifecycle of an execution backend.

    A subclass sets :attr:`name` and writes :meth:`check` and :meth:`run`; the other methods
    have defaults that suit a backend with nothing running in the background. Backends are
    found through the entry-point group ``pytest_cleanroom.backends`` (see
    :mod:`pytest_cleanroom.backends.registry`) or passed as an instance:
    ``Cleanroom(path, backend=MyBackend())``.
    """

    #: The name results, reports and attestations record (``RunResult.backend``).
    name: ClassVar[str]
    #: Whether :meth:`~pytest_cleanroom.engine.Cleanroom.bind_workspace` can show commands
    #: another host directory at :data:`WORKSPACE_PATH` (it must be able to mount any
    #: directory of this file system, as the namespace backends do).
    can_bind_workspace: ClassVar[bool] = False
    #: Whether ``network="isolated"`` gives commands a network namespace of their own.
    isolates_network: ClassVar[bool] = True
    #: How this backend may enforce limits: values of ``RunResult.limits_enforcement``.
    limits_enforced_by: ClassVar[tuple[str, ...]] = ()
    #: Whether one instance may serve many cleanrooms, one after another or at once: it keeps
    #: nothing of a command or a cleanroom between commands (the pytest plugin then shares one
    #: per run instead of making one per test). :meth:`cancel` and :meth:`close` reach every
    #: cleanroom's commands, so a cleanroom cancels its own through :meth:`cancel_commands`.
    reusable: ClassVar[bool] = False

    @abstractmethod
    def check(self, policy: Policy) -> None:
        """Raise :class:`~pytest_cleanroom.errors.BackendUnavailableError` naming the fix
        unless this backend can honour every promise of ``policy`` here."""

    @abstractmethod
    def run(self, spec: CommandSpec) -> RunResult:
        """Run one command and return its result (see :func:`~.finish.finish_result`)."""

    def cancel(self) -> None:  # noqa: B027 (optional: nothing to do by default)
        """Kill every command this backend is running, from any thread; it stays usable."""

    def cancel_commands(self, specs: Collection[CommandSpec]) -> None:
        """Kill the running commands started from ``specs`` (the very objects given to
        :meth:`run`), from any thread. The default kills every command of the backend
        (:meth:`cancel`): enough for a backend that is not :attr:`reusable`."""
        self.cancel()

    def close(self) -> None:
        """Kill every command still running and let go of what the backend holds."""
        self.cancel()

    def prepare_ahead(self) -> None:  # noqa: B027 (optional: nothing to do by default)
        """Get ready for the next command in the background, where the backend can."""

    def stage_in(self, spec: CommandSpec) -> None:  # noqa: B027 (optional: nothing to do by default)
        """Make ``spec.workspace`` visible to the sandbox before the command runs (a backend
        whose sandbox does not see this file system copies it in; the default does nothing)."""

    def stage_out(self, spec: CommandSpec) -> None:  # noqa: B027 (optional: nothing to do by default)
        """Bring what the command changed back into ``spec.workspace`` (called after
        :meth:`run`, also when it raised; the default does nothing)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


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
    limits_enforcement: str | None = None,
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
        limits_enforcement=limits_enforcement,
    )


def _relative_cwd(cwd: str) -> str:
    if cwd == WORKSPACE_PATH:
        return "."
    if cwd.startswith(WORKSPACE_PATH + "/"):
        return cwd[len(WORKSPACE_PATH) + 1 :]
    return cwd


def output_cut_message(max_output: int | None) -> bytes:
    """The line added to stderr of a command ended by its policy's ``max_output`` (add it
    through :meth:`CappedStream.take`, which copies the stream once)."""
    return (
        f"\ncleanroom: command killed: it printed more than max_output={max_output} bytes "
        "on stdout or stderr; each stream was cut there\n"
    ).encode()


def not_found_message(program: str) -> bytes:
    """The stderr line of a command whose program does not exist (exit code 127)."""
    return f"cleanroom: command not found: {program}\n".encode()


def not_executable_message(program: str, reason: str) -> bytes:
    """The stderr line of a command whose program cannot be executed (exit code 126)."""
    return f"cleanroom: cannot execute {program}: {reason}\n".encode()
