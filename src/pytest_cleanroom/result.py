"""The outcome of one sandboxed command, with fluent assertions."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

TAIL_LINES = 20


class CleanroomAssertionError(AssertionError):
    """A fluent assertion on a :class:`RunResult` failed; shows the command and output."""


@dataclass(frozen=True)
class RunResult:
    """What happened when a command ran in the cleanroom.

    ``limit_exceeded`` names the limit that ended the command (``"timeout"``, ``"memory"``,
    ``"processes"``, ``"file_size"``, ``"cpu_time"``, ``"output"``: stdout or stderr went past the
    policy's ``max_output`` and was cut there) or is ``None`` (the open-files limit is
    enforced, but only the program sees it: ``EMFILE``). ``exit_code`` follows the shell's
    convention: ``128 + N`` for a command killed by signal N, 127 for a program not found.
    ``peak_memory`` is in bytes and ``cpu_time`` in seconds, both for the whole process tree,
    ``None`` where the backend could not measure them. ``cancelled`` is true when
    :meth:`Cleanroom.cancel <pytest_cleanroom.engine.Cleanroom.cancel>` stopped the command (its
    whole process tree was killed) or kept it from starting. ``limits_enforcement`` says what
    enforced the policy's limits: ``"cgroup1"``, ``"cgroup2"`` (the whole tree), ``"rlimit"``
    (per process, see docs/policies.md), ``"docker"`` or ``"podman"`` (the container's cgroups,
    held by that engine), ``None`` for a command that never started.
    """

    command: tuple[str, ...]
    exit_code: int
    stdout_bytes: bytes
    stderr_bytes: bytes
    duration: float
    backend: str
    policy_name: str
    policy_digest: str
    seed: int
    timed_out: bool = False
    limit_exceeded: str | None = None
    peak_memory: int | None = None
    cpu_time: float | None = None
    workspace: Path | None = None
    cwd: str = "."
    environment: Mapping[str, str] = field(default_factory=dict)
    started_at: float = 0.0
    cancelled: bool = False
    limits_enforcement: str | None = None

    @property
    def stdout(self) -> str:
        """Standard output decoded as UTF-8; undecodable bytes become U+FFFD."""
        return self.stdout_bytes.decode("utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        """Standard error decoded as UTF-8; undecodable bytes become U+FFFD."""
        return self.stderr_bytes.decode("utf-8", errors="replace")

    @property
    def succeeded(self) -> bool:
        return (
            self.exit_code == 0
            and not self.timed_out
            and self.limit_exceeded is None
            and not self.cancelled
        )

    @property
    def command_line(self) -> str:
        return shlex.join(self.command)

    # -- fluent assertions ---------------------------------------------------------------------

    def assert_success(self) -> RunResult:
        """Exit code 0, not timed out, no limit hit."""
        if not self.succeeded:
            self._fail("expected the command to succeed")
        return self

    def assert_failure(self) -> RunResult:
        """Any non-zero exit, timeout or limit breach."""
        if self.succeeded:
            self._fail("expected the command to fail")
        return self

    def assert_exit_code(self, code: int) -> RunResult:
        if self.exit_code != code:
            self._fail(f"expected exit code {code}")
        return self

    def assert_stdout_contains(self, text: str) -> RunResult:
        if text not in self.stdout:
            self._fail(f"expected stdout to contain {text!r}")
        return self

    def assert_stderr_contains(self, text: str) -> RunResult:
        if text not in self.stderr:
            self._fail(f"expected stderr to contain {text!r}")
        return self

    def assert_stdout_matches(self, pattern: str) -> RunResult:
        """``re.search`` of ``pattern`` (multiline) in stdout."""
        if re.search(pattern, self.stdout, re.MULTILINE) is None:
            self._fail(f"expected stdout to match /{pattern}/")
        return self

    def assert_stderr_matches(self, pattern: str) -> RunResult:
        if re.search(pattern, self.stderr, re.MULTILINE) is None:
            self._fail(f"expected stderr to match /{pattern}/")
        return self

    def assert_file_exists(self, path: str) -> RunResult:
        """``path`` is relative to the workspace the command ran in."""
        if self.workspace is None or not (self.workspace / path).exists():
            self._fail(f"expected file {path!r} to exist in the workspace")
        return self

    def assert_limit_exceeded(self, limit: str) -> RunResult:
        if self.limit_exceeded != limit:
            self._fail(f"expected the {limit!r} limit to end the command")
        return self

    def describe(self) -> str:
        """Command, outcome and the tails of both streams, as shown in assertion failures."""
        status = f"exit code {self.exit_code}"
        if self.timed_out:
            status += " (timed out)"
        if self.cancelled:
            status += " (cancelled)"
        if self.limit_exceeded and self.limit_exceeded != "timeout":
            status += f" (limit exceeded: {self.limit_exceeded})"
        return (
            f"command: {self.command_line}\n"
            f"{status} after {self.duration:.3f}s "
            f"[backend={self.backend} policy={self.policy_name} seed={self.seed}]\n"
            f"--- stdout (last {TAIL_LINES} lines) ---\n{_tail(self.stdout)}\n"
            f"--- stderr (last {TAIL_LINES} lines) ---\n{_tail(self.stderr)}"
        )

    def _fail(self, expectation: str) -> None:
        __tracebackhide__ = True
        raise CleanroomAssertionError(f"{expectation}\n{self.describe()}")


def _tail(text: str, lines: int = TAIL_LINES) -> str:
    parts = text.splitlines()
    if not parts:
        return "<empty>"
    shown = parts[-lines:]
    skipped = len(parts) - len(shown)
    prefix = f"... ({skipped} earlier lines)\n" if skipped else ""
    return prefix + "\n".join(shown)
