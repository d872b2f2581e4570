"""The journal of a package switch: what ``apply`` is about to move and the lock it will write,
so that a ggen killed half-way (SIGKILL, power cut) is rolled back, or completed, by the next.

The lock is the commit point: if ``ggen.lock`` holds the journal's new text, the switch happened
and only the staging area is left to remove; otherwise every move done is undone in reverse.
Recovery runs under the project's exclusive lock, so it only ever sees dead transactions.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from pytest_cleanroom.safe_write import write_output

JOURNAL_NAME = "journal.json"
STAGING_PREFIX = ".staging-"
#: One step: ``("mkdir", path)`` or ``("move", src, dest)``.
Step = tuple[str, ...]


def write_journal(staging: Path, steps: list[Step], lock_text: str | None) -> None:
    """Record the plan before its first step (durably: it must survive the crash it is for)."""
    document = {"steps": [list(step) for step in steps], "lock": lock_text}
    write_output(staging / JOURNAL_NAME, json.dumps(document), durable=True)


def undo(steps: list[Step]) -> None:
    """Undo the steps that were done, last first; a step never done is skipped."""
    for step in reversed(steps):
        if step[0] == "move":
            src, dest = step[1], step[2]
            if os.path.lexists(dest) and not os.path.lexists(src):
                os.rename(dest, src)
        elif step[0] == "mkdir":
            with contextlib.suppress(OSError):
                os.rmdir(step[1])


def leftovers(state_dir: Path) -> list[Path]:
    """Staging directories left in ``state_dir`` (``.ggen``) by earlier transactions."""
    try:
        return sorted(p for p in state_dir.iterdir() if p.name.startswith(STAGING_PREFIX))
    except OSError:
        return []


def recover(state_dir: Path, lock_path: Path) -> list[str]:
    """Roll back or finish every dead transaction under ``state_dir``; remove its staging area.

    Call it holding the project's exclusive lock. Returns what was done, one line each.
    """
    done = []
    for staging in leftovers(state_dir):
        plan = _read_journal(staging / JOURNAL_NAME)
        if plan is not None:
            steps, lock_text = plan
            if lock_text is not None and _text(lock_path) == lock_text:
                done.append(f"{staging.name}: completed (ggen.lock was written)")
            else:
                undo(steps)
                done.append(f"{staging.name}: rolled back {len(steps)} step(s)")
        shutil.rmtree(staging, ignore_errors=True)
    _remove_empty_id_dirs(state_dir / "packages")
    return done


def _read_journal(path: Path) -> tuple[list[Step], str | None] | None:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        steps = [tuple(str(part) for part in step) for step in data["steps"]]
        lock = data["lock"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None  # no journal: the transaction died before its first move
    return steps, lock if isinstance(lock, str) else None


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _remove_empty_id_dirs(packages: Path) -> None:
    if packages.is_dir():
        for id_dir in packages.iterdir():
            with contextlib.suppress(OSError):
                id_dir.rmdir()  # only succeeds when empty
