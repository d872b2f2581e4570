"""Phases with ``[lifecycle.X.cleanroom] enabled = true``: commands run through the engine.

The engine (``pytest_cleanroom.engine.Cleanroom``) is imported only here, only when such a phase
runs. The task's directory is the cleanroom's workspace; the commands see only the variables
make.toml declares (plus what the policy lets through), never the whole host environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, BinaryIO

from .errors import TaskFailedError
from .process import TAIL_LINES, Outcome

if TYPE_CHECKING:
    from .config import Project
    from .graph import Node


def run_in_cleanroom(
    project: Project,
    node: Node,
    command: str,
    *,
    env: Mapping[str, str],
    log: BinaryIO,
    on_line: Callable[[bytes], None],
    service_env: Mapping[str, str] | None = None,
) -> Outcome:
    """Run ``command`` in a cleanroom over the task's directory, under the phase's policy."""
    assert node.spec is not None
    settings = node.spec.cleanroom
    try:
        from pytest_cleanroom.engine import Cleanroom
        from pytest_cleanroom.errors import CleanroomError
        from pytest_cleanroom.policy import Policy
    except ImportError as exc:  # pragma: no cover - the engine ships with this package
        raise TaskFailedError(
            f"the cleanroom engine cannot be imported: {exc}",
            file=node.file,
            phase=node.phase,
            workspace=node.workspace,
            command=command,
        ) from None
    workspace_root = project.workspace_dir(node.workspace)
    relative_cwd = node.cwd.relative_to(workspace_root).as_posix()
    variables = dict(env)
    variables.update(service_env or {})
    variables.update({"GGEN_PHASE": node.phase, "GGEN_WORKSPACE": node.workspace or ""})
    try:
        room = Cleanroom(
            workspace_root,
            policy=Policy.coerce(settings.policy),
            timeout=node.spec.timeout,
            env=variables,
        )
        result = room.run(command, cwd=relative_cwd, timeout=node.spec.timeout)
    except NotImplementedError:
        raise TaskFailedError(
            "the cleanroom engine is not available in this build (Cleanroom.run is not "
            "implemented yet); disable [lifecycle."
            f"{node.phase}.cleanroom] or update pytest-cleanroom",
            file=node.file,
            phase=node.phase,
            workspace=node.workspace,
            command=command,
        ) from None
    except CleanroomError as exc:
        raise TaskFailedError(
            f"cleanroom refused to run `{command}`: {exc}",
            file=node.file,
            phase=node.phase,
            workspace=node.workspace,
            command=command,
        ) from None
    tail: list[str] = []
    for stream in (result.stdout_bytes, result.stderr_bytes):
        for line in stream.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                line += b"\n"
            log.write(line)
            on_line(line)
            tail.append(line.decode("utf-8", errors="replace").rstrip("\n"))
    return Outcome(
        exit_code=result.exit_code,
        timed_out=result.timed_out or result.limit_exceeded == "timeout",
        tail=tail[-TAIL_LINES:],
        bytes_out=len(result.stdout_bytes) + len(result.stderr_bytes),
    )
