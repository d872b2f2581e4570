"""Task execution: one node of a run (a task or a hook) from its cache lookup to its result.

A task's key is computed, a cache hit restores its outputs and replays its log; otherwise its
commands run (in a shell of their own session, or in a cleanroom), their failure is classified,
and its declared outputs are checked and stored.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from . import files
from ._restore import RestoreRefused
from .cache import CorruptEntryError, Entry, TaskCache, task_key
from .config import Project
from .errors import (
    CommandNotFoundError,
    LifecycleError,
    OutputsMissingError,
    StorageError,
    TaskFailedError,
)
from .graph import Node
from .process import Outcome, run_shell
from .reporter import Reporter
from .results import RunOptions, TaskResult
from .scheduler import RunControl

if TYPE_CHECKING:
    from .cleanroom_phase import CleanroomTask
    from .services import ServiceSession


def port_is_free(port: int) -> bool:
    """Whether nothing listens on TCP ``port`` of the loopback address (a dev server's port)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Connections in TIME_WAIT do not hold a port; only a listener does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class TaskExecutor:
    """Executes the nodes of one run.

    ``record`` keeps a finished node's result in the run's state; ``dependency_keys`` gives the
    cache keys of a task's dependencies (as they ran); ``run_phase`` runs a phase a hook names and
    says whether it succeeded.
    """

    def __init__(
        self,
        project: Project,
        options: RunOptions,
        *,
        run_id: str,
        cache: TaskCache,
        control: RunControl,
        reporter: Reporter,
        memo: files.HashMemo,
        log_dir: Path,
        warn: Callable[[str], None],
        record: Callable[[Node, TaskResult], None],
        dependency_keys: Callable[[Node], list[str]],
        run_phase: Callable[[str], bool],
    ) -> None:
        self.project = project
        self.options = options
        self.run_id = run_id
        self.cache = cache
        self.control = control
        self.reporter = reporter
        self.memo = memo
        self.log_dir = log_dir
        self.warn = warn
        self.record = record
        self.dependency_keys = dependency_keys
        self.run_phase = run_phase
        self.phase_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._services: ServiceSession | None = None

    # -- one node --------------------------------------------------------------------------------

    def execute(self, node: Node) -> TaskResult:
        """Run ``node`` (waiting for its phase lock and a slot) and report its result."""
        result = TaskResult.of(node)
        if node.kind == "hook":
            return self._execute_hook(node, result)
        assert node.spec is not None
        phase_lock = None
        if not node.spec.parallel:
            phase_lock = self.phase_locks.setdefault(node.phase, threading.Lock())
            while not phase_lock.acquire(timeout=0.05):
                if self.control.cancel.is_set():
                    return self._not_started(result)
        try:
            if not self.control.take_slot():
                return self._not_started(result)
            try:
                self.reporter.task_started(node)
                result.started_at = time.time()
                self._run_task(node, result)
            finally:
                self.control.release_slot()
        finally:
            if phase_lock is not None:
                phase_lock.release()
        result.ended_at = time.time()
        self.record(node, result)
        self.reporter.task_finished(result)
        return result

    def _not_started(self, result: TaskResult) -> TaskResult:
        result.status = "cancelled"
        result.error = f"not run: {self.control.reason}"
        self.reporter.task_finished(result)
        return result

    def process_env(self, node: Node) -> dict[str, str]:
        """The environment of ``node``'s commands: this process's, make.toml's, the run's."""
        env = dict(os.environ)
        env.update(node.env)
        env.update(
            {
                "GGEN_PROJECT_ROOT": str(self.project.root),
                "GGEN_PHASE": node.phase,
                "GGEN_WORKSPACE": node.workspace or "",
                "GGEN_RUN_ID": self.run_id,
            }
        )
        return env

    # -- a task ----------------------------------------------------------------------------------

    def _run_task(self, node: Node, result: TaskResult) -> None:
        assert node.spec is not None
        spec = node.spec
        result.cache_key = task_key(node, self.project.root, self.dependency_keys(node), self.memo)
        result.cache = "miss" if spec.cache_enabled else "off"
        if spec.cache_enabled and not self.options.no_cache and self._cache_hit(node, result):
            return
        if not self._can_start(node, result):
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / (node.id.replace(":", "__").replace("/", "_") + ".log")
        result.log = str(log_path)
        try:
            with log_path.open("wb") as log:
                if not self._run_commands(node, result, log):
                    return
        except OSError as exc:  # the log cannot be written: a full disk, say
            where = {"file": log_path, "phase": node.phase, "workspace": node.workspace}
            self._fail(result, StorageError.from_os_error(exc, **where))
            return
        produced = self._produced_outputs(node, result)
        if produced is not None and spec.cache_enabled:
            self._store(node, result, produced, log_path)

    def _cache_hit(self, node: Node, result: TaskResult) -> bool:
        """Restore the cached outputs and replay the log when the cache has the task's key."""
        assert result.cache_key is not None
        entry = self.cache.lookup(result.cache_key)
        if entry is None or not self._restore(node, entry):
            return False
        self._replay(node, entry.log_path)
        result.status = "cached"
        result.cache = entry.origin
        return True

    def _restore(self, node: Node, entry: Entry) -> bool:
        """Put ``entry``'s outputs in place; False (with one warning) when it must not be used,
        in which case the project is as it was and the task runs."""
        assert node.spec is not None
        try:
            self.cache.restore(entry, node.cwd, root=self.project.root, declared=node.spec.outputs)
            return True
        except CorruptEntryError as exc:
            self.warn(
                f"{node.label}: cache entry {entry.key[:12]} is corrupted ({exc}); ignoring and "
                "removing it"
            )
            self.cache.discard(entry.key)
        except (RestoreRefused, OSError) as exc:
            self.warn(f"{node.label}: cache entry {entry.key[:12]} not restored ({exc})")
        return False

    def _replay(self, node: Node, log_path: Path) -> None:
        with log_path.open("rb") as handle:
            for line in handle:
                self.reporter.line(node, line)

    def _can_start(self, node: Node, result: TaskResult) -> bool:
        """False (the task failed) when its directory is missing or its port is taken."""
        assert node.spec is not None
        where: dict[str, Any] = {
            "file": node.file,
            "phase": node.phase,
            "workspace": node.workspace,
        }
        if not node.cwd.is_dir():
            message = f"working directory {node.cwd} does not exist"
            self._fail(result, TaskFailedError(message, **where))
            return False
        port = node.spec.port
        if port and not port_is_free(port):
            message = (
                f"port {port} is in use on this machine; stop what listens there (or"
                f" change port in [lifecycle.{node.phase}]) before starting {node.label}"
            )
            self._fail(result, TaskFailedError(message, **where))
            return False
        return True

    def _run_commands(self, node: Node, result: TaskResult, log: BinaryIO) -> bool:
        """Run the task's commands in order (in its cleanroom, if it has one); False when one
        failed (``result`` says how)."""
        assert node.spec is not None
        env = self.process_env(node)
        with contextlib.ExitStack() as stack:
            room: CleanroomTask | None = None
            if node.spec.cleanroom.enabled:
                room = self._enter_cleanroom(node, result, log, stack)
                if room is None:
                    return False
            for command in node.commands:
                try:
                    if room is not None:
                        outcome = room.run(command, log, self._line_sink(node))
                    else:
                        outcome = self._run_shell(node, command, env, log)
                except TaskFailedError as exc:
                    self._fail(result, exc)
                    return False
                result.exit_code = outcome.exit_code
                result.tail = outcome.tail
                if outcome.exit_code != 0 or outcome.timed_out or outcome.cancelled:
                    self._fail(result, self._command_error(node, command, outcome))
                    return False
        return True

    def _enter_cleanroom(
        self, node: Node, result: TaskResult, log: BinaryIO, stack: contextlib.ExitStack
    ) -> CleanroomTask | None:
        from .cleanroom_phase import CleanroomTask

        task = CleanroomTask(
            self.project,
            node,
            node.env,
            self._service_session(),
            cancelled=self.control.cancel,
            table=self.control.table,
        )
        try:
            return stack.enter_context(task)
        except TaskFailedError as exc:
            log.write(exc.message.encode() + b"\n")
            self._fail(result, exc)
            return None

    def _produced_outputs(self, node: Node, result: TaskResult) -> list[str] | None:
        """The declared outputs that exist; ``None`` (the task failed) when some are missing
        and ``[cache] missing_outputs = "error"``."""
        assert node.spec is not None
        produced, missing = files.expand(node.cwd, node.spec.outputs)
        if missing and self.project.spec.cache.missing_outputs == "error":
            self._fail(
                result,
                OutputsMissingError(
                    f"declared outputs were not produced: {', '.join(missing)} (in {node.cwd};"
                    ' [cache] missing_outputs = "error")',
                    file=node.file,
                    phase=node.phase,
                    workspace=node.workspace,
                    command=node.commands[-1] if node.commands else None,
                ),
            )
            return None
        if missing:
            self.warn(
                f"{node.label}: declared outputs were not produced: {', '.join(missing)}"
                " (only what was produced is cached)"
            )
        return produced

    def _store(self, node: Node, result: TaskResult, produced: list[str], log: Path) -> None:
        assert result.cache_key is not None
        try:
            self.cache.store(
                result.cache_key,
                node.cwd,
                produced,
                log,
                {"phase": node.phase, "workspace": node.workspace},
                duration=result.duration_so_far(),
            )
        except OSError as exc:
            self.warn(f"{node.label}: could not store the cache entry: {exc}")

    # -- commands --------------------------------------------------------------------------------

    def _line_sink(self, node: Node) -> Callable[[bytes], None]:
        return lambda data: self.reporter.line(node, data)

    def _service_session(self) -> ServiceSession:
        with self._lock:
            if self._services is None:
                from .services import ServiceSession

                self._services = ServiceSession(self.project.root)
            return self._services

    def close(self) -> list[str]:
        """Stop the services the run's cleanroom phases started; what went wrong doing so."""
        with self._lock:
            services, self._services = self._services, None
        return services.close() if services is not None else []

    def _run_shell(self, node: Node, command: str, env: dict[str, str], log: BinaryIO) -> Outcome:
        """``command`` for ``node`` (a task, with its timeout, or a hook), killable by the run."""
        return run_shell(
            command,
            cwd=node.cwd,
            env=env,
            log=log,
            on_line=self._line_sink(node),
            table=self.control.table,
            cancelled=self.control.cancel,
            timeout=node.spec.timeout if node.spec is not None else None,
        )

    def _command_error(self, node: Node, command: str, outcome: Outcome) -> TaskFailedError:
        common: dict[str, Any] = {
            "file": node.file,
            "phase": node.phase,
            "workspace": node.workspace,
            "command": command,
            "exit_code": outcome.exit_code,
        }
        if outcome.cancelled:
            why = (
                "interrupted" if self.control.interrupted else "stopped because another task failed"
            )
            return TaskFailedError(f"`{command}` was {why}", **common)
        if outcome.timed_out:
            assert node.spec is not None
            return TaskFailedError(
                f"`{command}` timed out after {node.spec.timeout:g}s (timeout in "
                f"[lifecycle.{node.phase}])",
                **common,
            )
        if outcome.exit_code == 127:
            program = command.split()[0] if command.split() else command
            hint = next((ln for ln in reversed(outcome.tail) if "not found" in ln), "")
            return CommandNotFoundError(
                f"command not found: {program!r} in `{command}`"
                + (f" ({hint.strip()})" if hint else ""),
                **common,
            )
        if outcome.exit_code < 0:
            return TaskFailedError(
                f"`{command}` was killed by signal {-outcome.exit_code}", **common
            )
        return TaskFailedError(f"`{command}` exited with code {outcome.exit_code}", **common)

    def _fail(self, result: TaskResult, error: LifecycleError) -> None:
        control = self.control
        result.status = "interrupted" if control.interrupted else "failed"
        stopped = control.cancel.is_set() and not control.interrupted
        if stopped and "stopped because" in error.message:
            result.status = "cancelled"
        result.error = error.message
        result.error_obj = error
        if result.exit_code is None:
            result.exit_code = error.exit_code

    # -- a hook ----------------------------------------------------------------------------------

    def _execute_hook(self, node: Node, result: TaskResult) -> TaskResult:
        self.reporter.task_started(node)
        result.started_at = time.time()
        env = self.process_env(node)
        env["GGEN_HOOK"] = node.hook or ""
        for entry in node.entries:
            phase = self.project.hook_phase(entry)
            if phase is not None:
                if not self.run_phase(phase):
                    message = f"hook {node.hook}: phase {phase!r} did not succeed"
                    self._fail(
                        result, TaskFailedError(message, file=node.file, phase=node.phase or None)
                    )
                    break
                continue
            if not self._run_hook_command(node, entry, env, result):
                break
        result.ended_at = time.time()
        self.record(node, result)
        self.reporter.task_finished(result)
        return result

    def _run_hook_command(
        self, node: Node, entry: str, env: dict[str, str], result: TaskResult
    ) -> bool:
        """Run one command of a hook (in a slot); False when it failed or the run stops."""
        if not self.control.take_slot():
            result.status = "cancelled"
            return False
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_path = self.log_dir / f"{node.id.replace(':', '__')}.log"
            result.log = str(log_path)
            with log_path.open("ab") as log:
                outcome = self._run_shell(node, entry, env, log)
        finally:
            self.control.release_slot()
        result.exit_code = outcome.exit_code
        if outcome.exit_code != 0 or outcome.cancelled or outcome.timed_out:
            self._fail(result, self._command_error(node, entry, outcome))
            return False
        return True
