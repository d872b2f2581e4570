"""Running phases: one :class:`Runner` per invocation (``run``, ``pipeline``).

The runner holds a run together: the project lock, the state records, the whole-run hooks and
the once-per-invocation bookkeeping. Its parts live beside it: :mod:`.scheduler` (dependency
order, slots, stopping), :mod:`.execution` (one task or hook), :mod:`.planner` (``--dry-run``),
:mod:`.results` (what a run returns) and :mod:`.cache` (the :class:`~.cache.TaskCache` it is
given). Up to ``jobs`` commands run at once; every task runs at most once per invocation, even
when several graphs (a pipeline's stages, hooks that run phases) contain it.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import files, recovery
from .cache import TaskCache, open_cache
from .config import Project
from .errors import StorageError
from .execution import TaskExecutor, port_is_free
from .graph import Graph, Node, build_graph
from .hooks import check_run_hooks, run_hook_node
from .planner import Planner
from .reporter import Reporter
from .results import BAD, EXIT_INTERRUPTED, GOOD, RunOptions, RunSummary, TaskResult
from .scheduler import Interrupted, RunControl, Scheduler
from .state import RunLock, StateStore, StateWriter, atomic_write

__all__ = [
    "BAD",
    "EXIT_INTERRUPTED",
    "GOOD",
    "Interrupted",
    "RunOptions",
    "RunSummary",
    "Runner",
    "TaskResult",
    "port_is_free",
    "run_phases",
]

KEEP_LOG_RUNS = files.KEEP_LOG_RUNS


class Runner:
    """Runs phases of one project with the given options, reporting to ``reporter``.

    ``cache`` is where task outputs are looked up and stored (default: what ``[cache]`` and
    turbo's variables configure, see :func:`ggen_lifecycle.cache.open_cache`).
    """

    def __init__(
        self,
        project: Project,
        options: RunOptions,
        reporter: Reporter | None = None,
        *,
        cache: TaskCache | None = None,
    ) -> None:
        self.project = project
        self.options = options
        self.reporter = reporter or Reporter(open(os.devnull, "wb"), quiet=True)  # noqa: SIM115
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + os.urandom(3).hex()
        self.warnings: list[str] = []
        self._lock = threading.Lock()
        self._claims: dict[str, threading.Event] = {}
        self._results: dict[str, TaskResult] = {}
        self._order: list[str] = []
        self._writer: StateWriter | None = None
        state_dir = project.state_dir
        self.memo = files.HashMemo(state_dir / "hashes.json")
        self.cache = cache or open_cache(
            state_dir / "cache", project.spec.cache, os.environ, self.warn
        )
        self.state = StateStore(state_dir / "state.json", warn=self.warn)
        self.log_dir = state_dir / "logs" / self.run_id
        self.control = RunControl(options.jobs)
        self.executor = TaskExecutor(
            project,
            options,
            run_id=self.run_id,
            cache=self.cache,
            control=self.control,
            reporter=self.reporter,
            memo=self.memo,
            log_dir=self.log_dir,
            warn=self.warn,
            record=self._record,
            dependency_keys=self._dependency_keys,
            run_phase=self._run_phase,
        )
        self.scheduler = Scheduler(
            self.control,
            self._execute_once,
            self._finish_unstarted,
            keep_going=options.keep_going,
        )
        for message in project.warnings:  # keys of make.toml that were ignored
            self.warn(message)

    # -- public ----------------------------------------------------------------------------------

    @property
    def interrupted(self) -> bool:
        """Whether Ctrl-C or SIGTERM stopped the run."""
        return self.control.interrupted

    def warn(self, message: str) -> None:
        with self._lock:
            self.warnings.append(message)
        self.reporter.message(message)

    def graphs(self, phases: Sequence[str]) -> list[Graph]:
        """One graph per requested phase, all built (and checked) before anything runs."""
        return [
            build_graph(
                self.project,
                [phase],
                workspace=self.options.workspace,
                environment=self.options.environment,
            )
            for phase in phases
        ]

    def plan(self, phases: Sequence[str]) -> list[dict[str, Any]]:
        """What ``run`` would do, in order, without running anything (``--dry-run``).

        The steps are the run's: ``before_all``, each phase's tasks with their
        ``before_<phase>``/``after_<phase>`` hooks, ``after_all``, and last ``on_error`` (marked
        ``"when": "on failure"``). A hook entry that names a phase is listed in the hook's
        ``runs`` with the ids of the steps it adds, which follow the hook. Each task's cache key
        is computed as the run would; ``cache`` says whether the cache holds an entry for it now
        (``hit``), not (``miss``), or the task is not cached (``off``).
        """
        graphs = self.graphs(phases)
        check_run_hooks(self.project, self.options.environment)
        planner = Planner(
            self.project,
            self.cache,
            environment=self.options.environment,
            no_cache=self.options.no_cache,
            memo=self.memo,
        )
        return planner.plan(graphs)

    def run(self, phases: Sequence[str], *, argv: Sequence[str] = ()) -> RunSummary:
        """Run ``phases`` one after the other (a pipeline); a failed stage stops the pipeline.

        Configuration errors raise before anything runs. Ctrl-C stops every child process and
        gives a summary with status ``interrupted``.
        """
        graphs = self.graphs(phases)
        check_run_hooks(self.project, self.options.environment)
        summary = RunSummary(
            run_id=self.run_id,
            project=self.project.name,
            phases=list(phases),
            environment=self.options.environment,
            started_at=time.time(),
            validation_gate=self.options.validation_gate,
        )
        lock = RunLock(self.project.state_dir, argv or ["run", *phases])
        try:
            lock.acquire(self.options.wait)
        except OSError as exc:  # a read-only or full disk: nothing has run
            raise StorageError.from_os_error(exc, file=self.project.state_dir) from None
        try:
            self._start_run(summary)
            summary.status = self._run_stages(graphs)
        except BaseException:
            self.control.cancel.set()
            self.scheduler.join()
            raise
        finally:
            self._end_run(summary, lock)
        return summary

    def request_interrupt(self) -> None:
        """Stop the run as Ctrl-C does (used by the SIGTERM handler)."""
        self.control.interrupted = True
        self.control.stop_running()

    def run_graph(self, graph: Graph) -> bool:
        """Run every node of ``graph`` in dependency order; True when all succeeded."""
        return self.scheduler.run_graph(graph)

    # -- one invocation --------------------------------------------------------------------------

    def _start_run(self, summary: RunSummary) -> None:
        """Prepare ``.ggen`` (under the lock), finish what a killed run left, record the run."""
        try:
            self._ensure_state_dir()
            recovery.clean_up(self.project.root, self.project.state_dir, self.warn)
        except OSError as exc:
            raise StorageError.from_os_error(exc, file=self.project.state_dir) from None
        try:
            self.state.record_run(self._run_record(summary, "running"))
        except OSError as exc:  # state is a record, never a reason to fail a run
            self.warn(f"could not record the run in state.json: {exc}")
        self._writer = StateWriter(self.state, self.warn)

    def _run_stages(self, graphs: Sequence[Graph]) -> str:
        """The hooks and graphs of the run in order; the run's status."""
        for graph in graphs:
            self.reporter.plan(len(graph))
        ok = False
        try:
            ok = self._run_hook_list("before_all")
            for graph in graphs:
                if not ok:
                    break
                ok = self.run_graph(graph)
            if ok:
                ok = self._run_hook_list("after_all")
            if ok:
                ok = self._run_hook_list("on_success")
            if not ok and not self.interrupted:
                self._run_on_error()
        except (KeyboardInterrupt, Interrupted):
            self._interrupt()
        return "interrupted" if self.interrupted else ("success" if ok else "failed")

    def _end_run(self, summary: RunSummary, lock: RunLock) -> None:
        """Record the outcome, save the input-hash memo, release ``lock``, stop what the run
        started."""
        summary.ended_at = time.time()
        summary.results = [self._results[i] for i in self._order]
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        summary.warnings = list(self.warnings)
        summary.task_cleanup = self.control.table.cleanup
        with contextlib.suppress(Exception):
            self.state.record_run(self._run_record(summary, summary.status))
        with contextlib.suppress(OSError):
            self.memo.save()
        lock.release()
        self.control.table.close()
        with contextlib.suppress(OSError):
            self._prune_logs()
        for problem in self.executor.close():
            self.warn(problem)

    def _interrupt(self) -> None:
        self.control.interrupted = True
        self.control.cancel.set()
        self.control.table.kill_all()
        self.scheduler.join()
        self.warn("interrupted: every running command was stopped")

    # -- once per invocation ---------------------------------------------------------------------

    def _execute_once(self, node: Node) -> TaskResult:
        """``node``'s result: executed by the first caller, awaited by the others."""
        with self._lock:
            claim = self._claims.get(node.id)
            owner = claim is None
            if claim is None:
                claim = self._claims[node.id] = threading.Event()
        if not owner:
            while not claim.wait(0.1):
                if self.interrupted:
                    return self._not_started(node)
            return self._results[node.id]
        result = self._execute_guarded(node)
        self._store_result(result)
        claim.set()
        return result

    def _execute_guarded(self, node: Node) -> TaskResult:
        """Execute ``node``; an interruption, a storage error or a bug is its result."""
        try:
            return self.executor.execute(node)
        except Interrupted:
            result = TaskResult.of(node, "interrupted", error="interrupted")
        except OSError as exc:  # a full disk, say: the task fails, the run goes on
            now = time.time()
            problem = StorageError.from_os_error(exc, phase=node.phase, workspace=node.workspace)
            result = TaskResult.of(
                node, "failed", error=str(problem), error_obj=problem, started_at=now, ended_at=now
            )
        except Exception as exc:  # a bug: the task fails, the run goes on
            now = time.time()
            error = f"internal error: {type(exc).__name__}: {exc}"
            result = TaskResult.of(node, "failed", error=error, started_at=now, ended_at=now)
        self.reporter.task_finished(result)
        return result

    def _not_started(self, node: Node) -> TaskResult:
        result = TaskResult.of(node, "cancelled", error=f"not run: {self.control.reason}")
        self.reporter.task_finished(result)
        return result

    def _store_result(self, result: TaskResult) -> None:
        with self._lock:
            if result.id not in self._results:
                self._order.append(result.id)
            self._results[result.id] = result

    def _finish_unstarted(self, node: Node, status: str, reason: str) -> TaskResult:
        with self._lock:
            existing = self._results.get(node.id)
            if existing is not None:
                return existing
            self._claims.setdefault(node.id, threading.Event()).set()
        result = TaskResult.of(node, status, error=reason)
        self._store_result(result)
        self.reporter.task_finished(result)
        return result

    def _dependency_keys(self, node: Node) -> list[str]:
        """The cache keys the dependencies of ``node`` ran with (``""`` for one without)."""
        with self._lock:
            found = [self._results.get(d) for d in node.deps]
        return [(r.cache_key or "") if r else "" for r in found]

    def _record(self, node: Node, result: TaskResult) -> None:
        record = {
            "run_id": self.run_id,
            "phase": node.phase,
            "workspace": node.workspace,
            "kind": node.kind,
            "start": result.started_at,
            "duration": round(result.duration, 6),
            "result": result.status,
            "exit_code": result.exit_code,
            "cache": result.cache,
            "cache_key": result.cache_key,
            "error": result.error,
        }
        if self._writer is not None:
            self._writer.add(record)
            return
        try:
            self.state.record_task(record)
        except Exception as exc:  # state is a record, never a reason to fail a task
            self.warn(f"could not record {node.label} in state.json: {exc}")

    # -- hooks -----------------------------------------------------------------------------------

    def _run_phase(self, phase: str) -> bool:
        """Run ``phase`` for a hook that names it; True when it succeeded."""
        graph = build_graph(self.project, [phase], environment=self.options.environment)
        self.reporter.plan(len(graph))
        return self.run_graph(graph)

    def _run_hook_list(self, name: str, extra_env: dict[str, str] | None = None) -> bool:
        node = run_hook_node(self.project, name, self.options.environment)
        if node is None:
            return True
        if extra_env:
            node.env.update(extra_env)
        self.reporter.plan(1)
        result = self._execute_once(node)
        return result.status in GOOD

    def _run_on_error(self) -> None:
        failed = [r.label for r in self._results.values() if r.status == "failed"]
        self.control.cancel.clear()  # on_error must be able to run after fail-fast
        self._run_hook_list("on_error", {"GGEN_FAILED_TASKS": ",".join(failed)})

    # -- bookkeeping -----------------------------------------------------------------------------

    def _ensure_state_dir(self) -> None:
        state_dir = self.project.state_dir
        state_dir.mkdir(parents=True, exist_ok=True)
        ignore = state_dir / ".gitignore"
        if not ignore.exists():  # (a dangling link is refused by safe_write, not followed)
            atomic_write(ignore, "# ggen lifecycle's cache, logs and state\n*\n")

    def _run_record(self, summary: RunSummary, status: str) -> dict[str, Any]:
        return {
            "run_id": summary.run_id,
            "phases": summary.phases,
            "environment": summary.environment,
            "workspace": self.options.workspace,
            "start": summary.started_at,
            "duration": round(max(0.0, (summary.ended_at or time.time()) - summary.started_at), 6),
            "result": status,
            "tasks": len(self._results),
            **({"validation_gate": summary.validation_gate} if summary.validation_gate else {}),
        }

    def _prune_logs(self) -> None:
        files.prune_logs(self.project.state_dir / "logs")


def run_phases(
    project: Project,
    phases: Sequence[str],
    options: RunOptions | None = None,
    reporter: Reporter | None = None,
    on_runner: Callable[[Runner], None] | None = None,
) -> RunSummary:
    """Convenience: run ``phases`` of ``project`` and return the summary."""
    runner = Runner(project, options or RunOptions(), reporter)
    if on_runner is not None:
        on_runner(runner)
    return runner.run(phases)
