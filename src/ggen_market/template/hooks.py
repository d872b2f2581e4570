"""ggen's ``sh_before`` / ``sh_after`` template hooks, run in a cleanroom.

A gpack is untrusted, so its commands run only in a sandbox of :mod:`pytest_cleanroom` whose
workspace is the output directory: under the default ``strict`` policy they see the host's
system directories read-only, no network, no host data, and can write only into the output
directory. A hook that fails (or that no backend can sandbox) is an error naming the template
and the hook, with the end of its output.

One exception, chosen by the caller and never by a template: ``ggen market validate`` renders
inside its own cleanroom (at least ``strict``, where no cleanroom can be nested) and says so with
``confined_by`` (the hidden ``--hooks-in-validation-room`` option it alone passes); hooks then run
directly in that sandbox, and their records name its policy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import TemplateError

if TYPE_CHECKING:
    from pytest_cleanroom.engine import Cleanroom

HOOK_KEYS = ("sh_before", "sh_after")
#: The policy hooks run under unless ``--hook-policy`` names another level.
DEFAULT_HOOK_POLICY = "strict"
#: The backend a hook's record names when it ran directly in the validation's cleanroom.
VALIDATION_ROOM = "the validation's cleanroom"
#: Lines of a failing hook's output quoted in the error.
TAIL_LINES = 15


@dataclass(frozen=True)
class Hook:
    """One rendered ``sh_before``/``sh_after`` command of a template."""

    template: str  # gpack:template
    path: Path
    key: str
    command: str


@dataclass
class HookRun:
    """A hook and how it went (``ran`` is false in a dry run)."""

    hook: Hook
    ran: bool
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    policy: str = ""
    backend: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "template": self.hook.template,
            "hook": self.hook.key,
            "command": self.hook.command,
            "ran": self.ran,
            "exit_code": self.exit_code,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "policy": self.policy,
            "backend": self.backend,
        }


OnHook = Callable[[HookRun], None]


class HookRunner:
    """Runs hooks in one cleanroom on the output directory, made when the first hook runs."""

    def __init__(
        self,
        out: Path,
        *,
        policy: str = DEFAULT_HOOK_POLICY,
        backend: str = "auto",
        on_hook: OnHook | None = None,
        confined_by: str | None = None,
    ) -> None:
        self.out, self.policy, self.backend = out, policy, backend
        self.on_hook, self.confined_by = on_hook, confined_by
        self._room: Cleanroom | None = None
        self._home_was_there = False

    def __enter__(self) -> HookRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, hook: Hook, after_writing: bool = False) -> HookRun:
        """Run ``hook``; :class:`TemplateError` naming template and hook when it fails."""
        if self.confined_by is not None:
            record, timed_out = self._run_in_validation_room(hook), False
        else:
            room = self._cleanroom(hook)
            result = room.run(["sh", "-c", hook.command], cwd=".")
            record = HookRun(hook, True, result.exit_code, result.stdout, result.stderr,
                             result.policy_name, result.backend)  # fmt: skip
            timed_out = result.timed_out
        if self.on_hook is not None:
            self.on_hook(record)
        if record.exit_code != 0:
            raise TemplateError(_failure(record, timed_out, after_writing))
        return record

    def _run_in_validation_room(self, hook: Hook) -> HookRun:
        """The hook as a child of this process, already confined by the validation's cleanroom
        (whose time limit bounds it); refused anywhere but inside a cleanroom."""
        from pytest_cleanroom.backends.base import WORKSPACE_PATH

        if os.environ.get("CLEANROOM_WORKSPACE") != WORKSPACE_PATH:
            raise TemplateError(
                f"{hook.path}: front matter: {hook.key}: `{hook.command}` is not run: hooks run"
                " outside a cleanroom only inside the one of `ggen market validate`, and this"
                " process is not in a cleanroom"
            )
        self.out.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["sh", "-c", hook.command], cwd=self.out, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, errors="replace", check=False,
        )  # fmt: skip
        return HookRun(hook, True, done.returncode, done.stdout, done.stderr,
                       self.confined_by or "", VALIDATION_ROOM)  # fmt: skip

    def _cleanroom(self, hook: Hook) -> Cleanroom:
        if self._room is not None:
            return self._room
        from pytest_cleanroom.engine import Cleanroom
        from pytest_cleanroom.environment import HOME_DIR
        from pytest_cleanroom.errors import CleanroomError

        self.out.mkdir(parents=True, exist_ok=True)
        self._home_was_there = (self.out / HOME_DIR).exists()
        try:
            self._room = Cleanroom(self.out, policy=self.policy, backend=self.backend)
        except CleanroomError as exc:
            raise TemplateError(
                f"{hook.path}: front matter: {hook.key}: `{hook.command}` is not run: no"
                f" cleanroom under policy {self.policy!r} ({exc}); a gpack's command runs only"
                " in one"
            ) from None
        return self._room

    def close(self) -> None:
        """Close the cleanroom; remove the ``HOME`` directory it made in the output."""
        if self._room is None:
            return
        from pytest_cleanroom.environment import HOME_DIR

        self._room.close()
        home = self.out / HOME_DIR
        if not self._home_was_there and home.is_dir() and not home.is_symlink():
            shutil.rmtree(home, ignore_errors=True)
        self._room = None


def _failure(record: HookRun, timed_out: bool, after_writing: bool) -> str:
    hook = record.hook
    how = "ran past its time limit" if timed_out else f"failed with exit code {record.exit_code}"
    state = (
        "the generated files were written before it ran"
        if after_writing
        else "no generated file was written"
    )
    tail = (record.stdout + record.stderr).rstrip().splitlines()[-TAIL_LINES:]
    quoted = "".join(f"\n    {line}" for line in tail)
    return (
        f"{hook.path}: front matter: {hook.key}: `{hook.command}` {how} in a cleanroom"
        f" (policy {record.policy}, backend {record.backend}); {state}"
        + (f"; its output ends:{quoted}" if tail else "")
    )
