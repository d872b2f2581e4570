"""Typed errors of the lifecycle runner: each carries what it concerns (file, phase, ...)."""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False  # pathlib is imported only for an error that names a file
if TYPE_CHECKING:
    from pathlib import Path


class LifecycleError(Exception):
    """Base of every error the runner raises on purpose.

    ``file``, ``line``, ``column``, ``phase``, ``workspace``, ``command`` and ``exit_code`` say what
    the error concerns; the message is complete on its own.
    """

    def __init__(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        column: int | None = None,
        phase: str | None = None,
        workspace: str | None = None,
        command: str | None = None,
        exit_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if file is not None:
            from pathlib import Path

            self.file: Path | None = Path(file)
        else:
            self.file = None
        self.line = line
        self.column = column
        self.phase = phase
        self.workspace = workspace
        self.command = command
        self.exit_code = exit_code

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        return where + self.message

    def to_dict(self) -> dict[str, object]:
        """The error as JSON-ready data (``--json`` output)."""
        return {
            "type": type(self).__name__,
            "message": str(self),
            "file": str(self.file) if self.file else None,
            "line": self.line,
            "column": self.column,
            "phase": self.phase,
            "workspace": self.workspace,
            "command": self.command,
            "exit_code": self.exit_code,
        }


class ConfigError(LifecycleError):
    """``make.toml`` (or ``production.toml``) is malformed or invalid."""


class UnknownPhaseError(ConfigError):
    """A phase that is neither declared nor standard was named."""


class UnknownWorkspaceError(ConfigError):
    """A workspace that is not declared was named."""


class UnknownEnvironmentError(ConfigError):
    """``--env NAME`` names no ``[env.NAME]`` table."""


class CycleError(ConfigError):
    """Phases, workspaces or hooks depend on each other in a loop; ``chain`` shows it."""

    def __init__(self, message: str, *, chain: list[str], **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.chain = chain


class TaskFailedError(LifecycleError):
    """A task's command exited non-zero, timed out or could not start."""


class CommandNotFoundError(TaskFailedError):
    """The program a command names does not exist (shell exit status 127)."""


class OutputsMissingError(TaskFailedError):
    """The command succeeded but declared outputs were not produced."""


class StorageError(LifecycleError):
    """A file the lifecycle keeps (``.ggen``, a task's log, ``production.toml``) could not be
    written: a full disk, a read-only file system, missing permissions."""

    @classmethod
    def from_os_error(cls, exc: OSError, **kwargs: object) -> StorageError:
        """The error for ``exc``, naming its file (``file`` if ``exc`` names none) and what to do
        about it."""
        if exc.filename is not None:
            kwargs["file"] = os.fsdecode(exc.filename)
        where = kwargs.get("file")
        what = f"cannot write {where}" if where is not None else "a write failed"
        from pytest_cleanroom.errors import OutputPathError  # its reason says what to do

        fix = "" if isinstance(exc, OutputPathError) else _STORAGE_FIXES.get(exc.errno or 0, "")
        return cls(f"{what}: {exc.strerror or exc}{fix}", **kwargs)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return self.message  # it names the file already


_STORAGE_FIXES = {
    errno.ENOSPC: "; free some space there (`ggen lifecycle clean` removes the task cache)",
    errno.EDQUOT: "; free some space: your disk quota is used up",
    errno.EROFS: "; run the project from a writable copy",
    errno.EACCES: "; check the permissions of that path",
    errno.EPERM: "; check the permissions of that path",
}


class StateLockError(LifecycleError):
    """Another run of the same project holds the project's run lock."""


class ReadinessError(LifecycleError):
    """A readiness requirement or status change is invalid."""


class ProductionValidationError(LifecycleError):
    """Production validation could not run at all (no cleanroom for its policy, an unusable
    signing key, a step that names nothing), as opposed to a step that ran and failed."""


class ValidationGateError(LifecycleError):
    """A gated phase (``deploy``) was asked to run without a passing, trusted validation
    statement for exactly the project's current inputs."""
