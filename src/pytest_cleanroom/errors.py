"""Errors raised by the cleanroom engine."""

from __future__ import annotations

import errno


class CleanroomError(Exception):
    """Base class of every error the engine raises on purpose."""


class PolicyError(CleanroomError, ValueError):
    """An unknown policy level or an invalid policy field."""


class BackendUnavailableError(CleanroomError):
    """A backend cannot honour the requested policy on this machine.

    The message names what is missing and how to install or enable it; the command was not run.
    """


class TreeLimitsError(BackendUnavailableError):
    """A policy's whole-tree limits (memory, CPU time) cannot be held here, only per process.

    Raised unless the caller opted in to per-process limits (``per_process_limits=True``,
    ``--cleanroom-per-process-limits``); the message names the fields, why, and the fixes.
    """


class WorkspaceError(CleanroomError):
    """A path escapes the workspace, or the workspace cannot be used."""


class CommandNotFoundError(CleanroomError):
    """The program of a command does not exist inside the sandbox."""


class SandboxError(CleanroomError):
    """The sandbox could not be set up for a command (a mount failed, the backend broke).

    The message carries the backend's own words; the command did not run.
    """


class OutputPathError(CleanroomError, OSError):
    """An output path that must not be written: a directory, a block device, a socket, a link
    out of its directory, or a FIFO nobody reads. Nothing was written."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(errno.EPERM, reason, str(path))

    def __str__(self) -> str:
        return f"{self.filename}: {self.strerror}"
