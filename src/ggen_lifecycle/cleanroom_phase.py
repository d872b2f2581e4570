"""Phases with ``[lifecycle.X.cleanroom] enabled = true``: commands run through the engine.

The engine (``pytest_cleanroom.engine.Cleanroom``) is imported only here, only when such a phase
runs. The task's workspace directory is the cleanroom's workspace; commands see the variables
make.toml declares (plus what the policy lets through), never the whole host environment. The
phase's services (:mod:`.services`) are handed to the task and reached through their unix
sockets, bound into the sandbox, with their connection settings (``PGHOST``, ``DATABASE_URL``,
``REDIS_URL``...) in the environment of every command whose policy allows them.
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
    from pytest_cleanroom.policy import Policy

    from .config import Project
    from .graph import Node
    from .services import ServiceSession, TaskService


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
        self.handed: list[TaskService] = []
        self._notices: list[str] = []

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
            try:
                self._expose_services(policy)
            except BaseException:  # the room and what was handed out go with the failure
                self._stack.close()
                raise
        return self

    def _expose_services(self, policy: Policy) -> None:
        """Hand the phase's services to this task and bind each into the sandbox, as the
        pytest fixtures do: every command whose policy allows the service gets its socket
        directory and variables, and ``DATABASE_URL`` when it reaches one database service."""
        refused = [n for n in self.settings.services if not policy.allows_service(n)]
        if refused:
            raise self._error(
                f"service {refused[0]!r} is not allowed by cleanroom policy {policy.name!r} "
                f"(allowed_services: {', '.join(policy.allowed_services) or 'none'})"
            )
        assert self.services is not None
        from pytest_cleanroom.errors import CleanroomError
        from pytest_cleanroom.services.errors import database_url_conflict

        from .services import expose_in

        node = self.node
        self.handed = handed = self._stack.enter_context(
            self.services.for_task(
                self.settings.services, phase=node.phase, workspace=node.workspace
            )
        )
        try:
            expose_in(self.room, handed)
        except CleanroomError as exc:
            raise self._error(f"cannot expose the phase's services: {exc}") from None
        conflict = database_url_conflict(
            s.name for s in self.room.services.values() if s.database_url
        )
        if conflict:  # said before the first command's output, as a test gets a warning
            self._notices.append(f"cleanroom services: {conflict}")

    def _report_services(self, log: BinaryIO, on_line: Callable[[bytes], None]) -> None:
        """After a failed command: each service's log lines since the task began, and its
        health, into the task's log and output (as a failing test's report has them)."""
        for service in self.handed:
            for line in service.failure_report().splitlines():
                data = (line + "\n").encode()
                log.write(data)
                on_line(data)

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

        for notice in self._notices:
            data = f"{notice}\n".encode()
            log.write(data)
            on_line(data)
        self._notices.clear()
        node = self.node
        workspace_root = self.project.workspace_dir(node.workspace)
        relative_cwd = node.cwd.relative_to(workspace_root).as_posix()
        variables = dict(self.env)
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
        if not result.succeeded and not result.cancelled:
            self._report_services(log, on_line)
        return Outcome(
            exit_code=result.exit_code,
            timed_out=bool(result.timed_out) or result.limit_exceeded == "timeout",
            cancelled=result.cancelled,
            tail=tail[-TAIL_LINES:],
            bytes_out=len(result.stdout_bytes) + len(result.stderr_bytes),
        )
