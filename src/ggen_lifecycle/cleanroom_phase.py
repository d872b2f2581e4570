"""Phases with ``[lifecycle.X.cleanroom] enabled = true``: commands run through the engine.

The engine (``pytest_cleanroom.engine.Cleanroom``) is imported only here, only when such a phase
runs. The task's workspace directory is the cleanroom's workspace; commands see the variables
make.toml declares (plus what the policy lets through), never the whole host environment. The
phase's services are started for it and reached through their unix sockets, bound into the
sandbox, with their connection settings (``PGHOST``, ``DATABASE_URL``, ``REDIS_URL``...) in the
commands' environment.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO

from .errors import TaskFailedError
from .process import TAIL_LINES, Outcome, ProcessTable

if TYPE_CHECKING:
    from .config import Project
    from .graph import Node
    from .services import ServiceSession


class CleanroomTask:
    """One task's cleanroom (and its services), used as a context manager around its commands.

    While ``cancelled`` is set no command starts; the cleanroom is registered in ``table`` so that
    fail-fast and Ctrl-C (which set ``cancelled`` first, then kill the table) stop its running
    command and the command's whole process tree.
    """

    def __init__(
        self,
        project: Project,
        node: Node,
        env: Mapping[str, str],
        services: ServiceSession | None,
        *,
        cancelled: threading.Event | None = None,
        table: ProcessTable | None = None,
    ) -> None:
        assert node.spec is not None
        self.project = project
        self.node = node
        self.settings = node.spec.cleanroom
        self.env = dict(env)
        self.services = services
        self.cancelled = cancelled
        self.table = table
        self._stack = contextlib.ExitStack()
        self.room: Any = None
        self.service_env: dict[str, str] = {}

    def _error(self, message: str, command: str | None = None) -> TaskFailedError:
        return TaskFailedError(
            message,
            file=self.node.file,
            phase=self.node.phase,
            workspace=self.node.workspace,
            command=command,
        )

    def __enter__(self) -> CleanroomTask:
        try:
            from pytest_cleanroom.engine import Cleanroom
            from pytest_cleanroom.errors import CleanroomError
            from pytest_cleanroom.policy import Policy
        except ImportError as exc:  # pragma: no cover - the engine ships with this package
            raise self._error(f"the cleanroom engine cannot be imported: {exc}") from None
        node = self.node
        try:
            policy = Policy.coerce(self.settings.policy)
            self.room = Cleanroom(
                self.project.workspace_dir(node.workspace),
                policy=policy,
                timeout=node.spec.timeout if node.spec else None,
                env=self.env,
                cancel_event=self.cancelled,
            )
        except CleanroomError as exc:
            raise self._error(f"cannot set up the cleanroom: {exc}") from None
        self._stack.callback(self.room.close)
        if self.table is not None:
            self.table.add_room(self.room)
            self._stack.callback(self.table.discard_room, self.room)
        if self.settings.services:
            assert self.services is not None
            exposures = self._stack.enter_context(
                self.services.for_task(
                    self.settings.services, phase=node.phase, workspace=node.workspace
                )
            )
            for exposure in exposures:
                missing = not policy.allows_service(exposure.name)
                if missing:
                    self._stack.close()
                    raise self._error(
                        f"service {exposure.name!r} is not allowed by cleanroom policy "
                        f"{policy.name!r} (allowed_services: "
                        f"{', '.join(policy.allowed_services) or 'none'})"
                    )
                if exposure.socket_dir is not None:
                    self.room.expose_service(exposure.name, exposure.socket_dir, exposure.env)
                self.service_env.update(exposure.env)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def run(self, command: str, log: BinaryIO, on_line: Callable[[bytes], None]) -> Outcome:
        """Run ``command`` in the cleanroom; its output goes to ``log`` and ``on_line``."""
        from pytest_cleanroom.errors import CleanroomError

        node = self.node
        workspace_root = self.project.workspace_dir(node.workspace)
        relative_cwd = node.cwd.relative_to(workspace_root).as_posix()
        variables = dict(self.env)
        variables.update(self.service_env)
        variables.update({"GGEN_PHASE": node.phase, "GGEN_WORKSPACE": node.workspace or ""})
        try:
            result = self.room.run(
                command,
                cwd=relative_cwd,
                env=variables,
                timeout=node.spec.timeout if node.spec else None,
            )
        except CleanroomError as exc:
            raise self._error(f"cleanroom refused to run `{command}`: {exc}", command) from None
        tail: list[str] = []
        for stream in (result.stdout_bytes, result.stderr_bytes):
            for raw in stream.splitlines(keepends=True):
                line = raw if raw.endswith(b"\n") else raw + b"\n"
                log.write(line)
                on_line(line)
                tail.append(line.decode("utf-8", errors="replace").rstrip("\n"))
        if result.limit_exceeded and result.limit_exceeded != "timeout":
            message = f"cleanroom limit exceeded: {result.limit_exceeded}\n"
            log.write(message.encode())
            on_line(message.encode())
            tail.append(message.strip())
        return Outcome(
            exit_code=result.exit_code,
            timed_out=bool(result.timed_out) or result.limit_exceeded == "timeout",
            cancelled=result.cancelled,
            tail=tail[-TAIL_LINES:],
            bytes_out=len(result.stdout_bytes) + len(result.stderr_bytes),
        )
