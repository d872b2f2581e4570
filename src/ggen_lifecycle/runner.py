"""Running phases: the scheduler, task execution, caching, state and hooks.

One :class:`Runner` serves one invocation (``run``, ``pipeline``). Up to ``jobs`` commands run at
once; every task runs at most once per invocation, even when several graphs (a pipeline's stages,
hooks that run phases) contain it.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import files, recovery
from ._restore import RestoreRefused
from .cache import Cache, CorruptEntryError, Entry, compute_key
from .config import Project
from .errors import (
    CommandNotFoundError,
    LifecycleError,
    OutputsMissingError,
    StorageError,
    TaskFailedError,
)
from .graph import Graph, Node, build_graph
from .process import Outcome, ProcessTable, run_shell
from .reporter import Reporter
from .state import RunLock, StateStore, StateWriter, atomic_write

if TYPE_CHECKING:
    from .remote_cache import RemoteCache
    from .services import ServiceSession

GOOD = frozenset({"success", "cached"})
BAD = frozenset({"failed", "skipped", "cancelled", "interrupted"})
KEEP_LOG_RUNS = 20
EXIT_INTERRUPTED = 130


@dataclass
class RunOptions:
    """How to run: parallelism, failure policy, cache use, environment, workspace filter."""

    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    keep_going: bool = False
    no_cache: bool = False
    environment: str | None = None
    workspace: str | None = None
    wait: float = 0.0
    quiet: bool = False


@dataclass
class TaskResult:
    """What happened to one task (or hook) in a run."""

    id: str
    label: str
    kind: str
    phase: str
    workspace: str | None
    status: str
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    # "hit", "remote hit", "miss", "off", or None for hooks and tasks never started
    cache: str | None = None
    cache_key: str | None = None
    error: str | None = None
    error_obj: LifecycleError | None = None
    log: str | None = None
    tail: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, node: Node, status: str = "success", **fields: Any) -> TaskResult:
        """A result for ``node`` (its id, label, kind, phase and workspace) with ``status``."""
        return cls(
            id=node.id,
            label=node.label,
            kind=node.kind,
            phase=node.phase,
            workspace=node.workspace,
            status=status,
            **fields,
        )

    @property
    def duration(self) -> float:
        if self.started_at is None or self.ended_at is None:
            return 0.0
        return self.ended_at - self.started_at

    def duration_so_far(self) -> float:
        """Seconds since the task started (its duration while it still runs)."""
        return 0.0 if self.started_at is None else time.time() - self.started_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "kind": self.kind,
            "phase": self.phase,
            "workspace": self.workspace,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration": round(self.duration, 6),
            "exit_code": self.exit_code,
            "cache": self.cache,
            "cache_key": self.cache_key,
            "error": self.error,
            "error_type": type(self.error_obj).__name__ if self.error_obj else None,
            "log": self.log,
        }


@dataclass
class RunSummary:
    """The outcome of a whole invocation."""

    run_id: str
    project: str
    phases: list[str]
    environment: str | None
    started_at: float
    ended_at: float = 0.0
    status: str = "success"  # success | failed | interrupted
    results: list[TaskResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {"success": 0, "interrupted": EXIT_INTERRUPTED}.get(self.status, 1)

    @property
    def span(self) -> float:
        """Seconds from the first task's start to the last task's end (tasks, not hooks)."""
        times = [(r.started_at, r.ended_at) for r in self.results if r.kind == "task"]
        starts = [s for s, e in times if s is not None and e is not None]
        ends = [e for s, e in times if s is not None and e is not None]
        return max(ends) - min(starts) if starts else 0.0

    def errors(self) -> list[LifecycleError]:
        return [r.error_obj for r in self.results if r.error_obj is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "project": self.project,
            "phases": self.phases,
            "environment": self.environment,
            "status": self.status,
            "exit_code": self.exit_code,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration": round(self.ended_at - self.started_at, 6),
            "span": round(self.span, 6),
            "tasks": [r.to_dict() for r in self.results],
            "warnings": self.warnings,
        }


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


class Interrupted(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside the runner when Ctrl-C (or SIGTERM) stopped the run."""


class Runner:
    """Runs phases of one project with the given options, reporting to ``reporter``."""

    def __init__(
        self, project: Project, options: RunOptions, reporter: Reporter | None = None
    ) -> None:
        self.project = project
        self.options = options
        self.reporter = reporter or Reporter(open(os.devnull, "wb"), quiet=True)  # noqa: SIM115
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + os.urandom(3).hex()
        self.warnings: list[str] = []
        self.slots = threading.BoundedSemaphore(max(1, options.jobs))
        self.phase_locks: dict[str, threading.Lock] = {}
        self.cancel = threading.Event()
        self.interrupted = False
        self.table = ProcessTable()
        self._lock = threading.Lock()
        self._claims: dict[str, threading.Event] = {}
        self._results: dict[str, TaskResult] = {}
        self._order: list[str] = []
        self._threads: list[threading.Thread] = []
        self._services: ServiceSession | None = None
        self._writer: StateWriter | None = None
        self.memo = files.HashMemo(project.state_dir / "hashes.json")
        state_dir = project.state_dir
        self.cache = Cache(state_dir / "cache", project.spec.cache.max_bytes, warn=self.warn)
        self.state = StateStore(state_dir / "state.json", warn=self.warn)
        self.remote = self._remote_cache()
        self.log_dir = state_dir / "logs" / self.run_id
        for message in project.warnings:  # keys of make.toml that were ignored
            self.warn(message)

    def _remote_cache(self) -> RemoteCache | None:
        if not self.project.spec.cache.remote.url and not os.environ.get("TURBO_API"):
            return None  # nothing to import on the way to a local hit
        from .remote_cache import open_remote

        return open_remote(self.project.spec.cache.remote, os.environ, self.warn)

    # -- public ----------------------------------------------------------------------------------

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

    def run(self, phases: Sequence[str], *, argv: Sequence[str] = ()) -> RunSummary:
        """Run ``phases`` one after the other (a pipeline); a failed stage stops the pipeline.

        Configuration errors raise before anything runs. Ctrl-C stops every child process and
        gives a summary with status ``interrupted``.
        """
        graphs = self.graphs(phases)
        self._prepare_hooks()
        summary = RunSummary(
            run_id=self.run_id,
            project=self.project.name,
            phases=list(phases),
            environment=self.options.environment,
            started_at=time.time(),
        )
        lock = RunLock(self.project.state_dir, argv or ["run", *phases])
        try:
            lock.acquire(self.options.wait)
        except OSError as exc:  # a read-only or full disk: nothing has run
            raise StorageError.from_os_error(exc, file=self.project.state_dir) from None
        try:
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
            for graph in graphs:
                self.reporter.plan(len(graph))
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
            summary.status = "interrupted" if self.interrupted else ("success" if ok else "failed")
        except BaseException:
            self.cancel.set()
            self._join_threads()
            raise
        finally:
            summary.ended_at = time.time()
            summary.results = [self._results[i] for i in self._order]
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            summary.warnings = list(self.warnings)
            with contextlib.suppress(Exception):
                self.state.record_run(self._run_record(summary, summary.status))
            with contextlib.suppress(OSError):
                self.memo.save()
            lock.release()
            self.table.close()
            with contextlib.suppress(OSError):
                self._prune_logs()
            self._stop_services()
        return summary

    def request_interrupt(self) -> None:
        """Stop the run as Ctrl-C does (used by the SIGTERM handler)."""
        self.interrupted = True
        self._stop_running()

    def _stop_running(self) -> None:
        """Start nothing new and kill every running process tree (in the background)."""
        self.cancel.set()
        threading.Thread(target=self.table.kill_all, name="ggen-cancel", daemon=True).start()

    # -- scheduling ------------------------------------------------------------------------------

    def run_graph(self, graph: Graph) -> bool:
        """Run every node of ``graph`` in dependency order; True when all succeeded.

        Each node waits for a count of unsettled dependencies, so scheduling costs O(nodes +
        edges) however long the chains are.
        """
        order = graph.order()
        position = {n.id: i for i, n in enumerate(order)}
        dependents = graph.dependents()
        unsettled = {n.id: len(set(n.deps)) for n in order}
        ready = [position[i] for i, count in unsettled.items() if count == 0]
        heapq.heapify(ready)
        status: dict[str, str] = {}
        running: set[str] = set()
        done: queue.Queue[tuple[str, TaskResult]] = queue.Queue()

        def settle(node_id: str, outcome: str) -> None:
            status[node_id] = outcome
            for child in dict.fromkeys(dependents[node_id]):
                unsettled[child] -= 1
                if unsettled[child] == 0:
                    heapq.heappush(ready, position[child])

        while True:
            while ready:
                node = order[heapq.heappop(ready)]
                failed_deps = [d for d in node.deps if status.get(d) in BAD]
                if failed_deps:
                    labels = ", ".join(graph.nodes[d].label for d in failed_deps)
                    reason = f"not run: {labels} did not succeed"
                    settle(node.id, self._finish_unstarted(node, "skipped", reason).status)
                elif self.cancel.is_set():
                    continue  # never started: reported as cancelled below
                else:
                    running.add(node.id)
                    thread = threading.Thread(
                        target=self._worker, args=(node, done), name=f"task-{node.id}"
                    )
                    with self._lock:
                        self._threads.append(thread)
                    thread.start()
            if not running:
                break
            try:
                node_id, result = done.get(timeout=0.1)
            except queue.Empty:
                if self.interrupted:
                    raise Interrupted() from None
                continue
            running.discard(node_id)
            settle(node_id, result.status)
            if result.status == "failed" and not self.options.keep_going:
                self._stop_running()
        for node in order:
            if node.id not in status:
                reason = "interrupted" if self.interrupted else "stopped after a failure"
                status[node.id] = self._finish_unstarted(
                    node, "cancelled", f"not run: {reason}"
                ).status
        return all(s in GOOD for s in status.values())

    def _worker(self, node: Node, done: queue.Queue[tuple[str, TaskResult]]) -> None:
        result = self._execute_once(node)
        done.put((node.id, result))

    def _execute_once(self, node: Node) -> TaskResult:
        with self._lock:
            claim = self._claims.get(node.id)
            owner = claim is None
            if claim is None:
                claim = self._claims[node.id] = threading.Event()
        if not owner:
            while not claim.wait(0.1):
                if self.interrupted:
                    return self._not_started(node, TaskResult.of(node))
            return self._results[node.id]
        try:
            result = self._execute(node)
        except Interrupted:
            result = TaskResult.of(node, "interrupted", error="interrupted")
            self.reporter.task_finished(result)
        except OSError as exc:  # a full disk, say: the task fails, the run goes on
            now = time.time()
            problem = StorageError.from_os_error(exc, phase=node.phase, workspace=node.workspace)
            result = TaskResult.of(
                node, "failed", error=str(problem), error_obj=problem, started_at=now, ended_at=now
            )
            self.reporter.task_finished(result)
        except Exception as exc:  # a bug: the task fails, the run goes on
            now = time.time()
            error = f"internal error: {type(exc).__name__}: {exc}"
            result = TaskResult.of(node, "failed", error=error, started_at=now, ended_at=now)
            self.reporter.task_finished(result)
        self._store_result(result)
        claim.set()
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

    def _interrupt(self) -> None:
        self.interrupted = True
        self.cancel.set()
        self.table.kill_all()
        self._join_threads()
        self.warn("interrupted: every running command was stopped")

    def _join_threads(self) -> None:
        while True:
            with self._lock:
                alive = [t for t in self._threads if t.is_alive()]
            if not alive:
                return
            for thread in alive:
                thread.join(timeout=0.2)
            self.table.kill_all(grace=0.5)

    # -- one node --------------------------------------------------------------------------------

    def _execute(self, node: Node) -> TaskResult:
        result = TaskResult.of(node)
        if node.kind == "hook":
            return self._execute_hook(node, result)
        assert node.spec is not None
        if not node.spec.parallel:
            phase_lock = self.phase_locks.setdefault(node.phase, threading.Lock())
            while not phase_lock.acquire(timeout=0.05):
                if self.cancel.is_set():
                    return self._not_started(node, result)
        else:
            phase_lock = None
        try:
            if not self._take_slot():
                return self._not_started(node, result)
            try:
                self.reporter.task_started(node)
                result.started_at = time.time()
                self._run_task(node, result)
            finally:
                self.slots.release()
        finally:
            if phase_lock is not None:
                phase_lock.release()
        result.ended_at = time.time()
        self._record(node, result)
        self.reporter.task_finished(result)
        return result

    def _take_slot(self) -> bool:
        while not self.slots.acquire(timeout=0.05):
            if self.cancel.is_set():
                return False
        if self.cancel.is_set():
            self.slots.release()
            return False
        return True

    def _not_started(self, node: Node, result: TaskResult) -> TaskResult:
        result.status = "cancelled"
        result.error = "not run: " + (
            "interrupted" if self.interrupted else "stopped after a failure"
        )
        self.reporter.task_finished(result)
        return result

    def _process_env(self, node: Node) -> dict[str, str]:
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
        self._prepare_hooks()
        keys: dict[str, str] = {}
        out: list[dict[str, Any]] = []
        self._plan_hook("before_all", keys, out, None)
        for graph in graphs:
            self._plan_graph(graph, keys, out, None)
        self._plan_hook("after_all", keys, out, None)
        self._plan_hook("on_success", keys, out, "on success")
        self._plan_hook("on_error", keys, out, "on failure")
        return out

    def _plan_hook(
        self, name: str, keys: dict[str, str], out: list[dict[str, Any]], when: str | None
    ) -> None:
        node = self._hook_node(name)
        if node is not None:
            self._plan_node(node, keys, out, when)

    def _plan_graph(
        self, graph: Graph, keys: dict[str, str], out: list[dict[str, Any]], when: str | None
    ) -> list[str]:
        """Add the steps of ``graph`` not already planned; returns their ids."""
        added: list[str] = []
        for node in graph.order():
            added.extend(self._plan_node(node, keys, out, when))
        return added

    def _plan_node(
        self, node: Node, keys: dict[str, str], out: list[dict[str, Any]], when: str | None
    ) -> list[str]:
        if node.id in keys:
            return []  # a task runs once per invocation, however many times it is reached
        step: dict[str, Any] = {
            "id": node.id,
            "label": node.label,
            "kind": node.kind,
            "phase": node.phase,
            "workspace": node.workspace,
            "cwd": str(node.cwd),
            "commands": list(node.commands) if node.kind == "task" else node.entries,
            "depends_on": list(node.deps),
            "cache": None,
            "cache_key": None,
        }
        if when is not None:
            step["when"] = when
        keys[node.id] = ""
        out.append(step)
        added = [node.id]
        if node.kind == "task" and node.spec is not None:
            key = self._task_key(node, keys)
            keys[node.id] = key
            step["cache_key"] = key
            if not node.spec.cache_enabled:
                step["cache"] = "off"
            elif self.options.no_cache:
                step["cache"] = "miss"
            else:
                held = (self.cache.directory / key / "meta.json").is_file()
                step["cache"] = "hit" if held else "miss"
        if node.kind == "hook":
            runs: list[dict[str, Any]] = []
            for entry in node.entries:
                phase = self.project.hook_phase(entry)
                if phase is None:
                    runs.append({"command": entry})
                    continue
                graph = build_graph(self.project, [phase], environment=self.options.environment)
                steps = self._plan_graph(graph, keys, out, when)
                runs.append({"phase": phase, "steps": steps})
                added.extend(steps)
            step["runs"] = runs
        return added

    def _task_key(self, node: Node, known: dict[str, str] | None = None) -> str:
        assert node.spec is not None
        spec = node.spec
        patterns = list(spec.inputs)
        if not patterns and spec.cache_enabled:  # cache = true without inputs: every file
            patterns = ["**", *(f"!{p}" for p in spec.outputs)]
        inputs, _ = files.expand(node.cwd, patterns)
        try:
            cwd = node.cwd.relative_to(self.project.root).as_posix()
        except ValueError:
            cwd = str(node.cwd)
        if known is not None:
            dep_keys = [known.get(d, "") for d in node.deps]
        else:
            with self._lock:
                found = [self._results.get(d) for d in node.deps]
                dep_keys = [(r.cache_key or "") if r else "" for r in found]
        return compute_key(
            node.commands, node.env, cwd, files.hash_files(node.cwd, inputs, self.memo), dep_keys
        )

    def _run_task(self, node: Node, result: TaskResult) -> None:
        assert node.spec is not None
        spec = node.spec
        result.cache_key = self._task_key(node)
        caching = spec.cache_enabled
        result.cache = "miss" if caching else "off"
        if caching and not self.options.no_cache:
            entry = self.cache.lookup(result.cache_key)
            origin = "hit"
            if entry is None and self.remote is not None:
                entry = self.remote.fetch(result.cache_key, self.cache)
                origin = "remote hit"
            if entry is not None and self._restore(node, entry):
                self._replay(node, entry.log_path)
                result.status = "cached"
                result.cache = origin
                return
        if not node.cwd.is_dir():
            self._fail(
                result,
                TaskFailedError(
                    f"working directory {node.cwd} does not exist",
                    file=node.file,
                    phase=node.phase,
                    workspace=node.workspace,
                ),
            )
            return
        if spec.port and not port_is_free(spec.port):
            self._fail(
                result,
                TaskFailedError(
                    f"port {spec.port} is in use on this machine; stop what listens there (or"
                    f" change port in [lifecycle.{node.phase}]) before starting {node.label}",
                    file=node.file,
                    phase=node.phase,
                    workspace=node.workspace,
                ),
            )
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / (node.id.replace(":", "__").replace("/", "_") + ".log")
        result.log = str(log_path)
        env = self._process_env(node)
        try:
            with log_path.open("wb") as log, contextlib.ExitStack() as stack:
                room = None
                if spec.cleanroom.enabled:
                    from .cleanroom_phase import CleanroomTask

                    try:
                        room = stack.enter_context(
                            CleanroomTask(
                                self.project,
                                node,
                                node.env,
                                self._service_session(),
                                cancelled=self.cancel,
                                table=self.table,
                            )
                        )
                    except TaskFailedError as exc:
                        log.write(exc.message.encode() + b"\n")
                        self._fail(result, exc)
                        return
                for command in node.commands:
                    on_line = self._line_sink(node)
                    try:
                        if room is not None:
                            outcome = room.run(command, log, on_line)
                        else:
                            outcome = self._run_shell(node, command, env, log)
                    except TaskFailedError as exc:
                        self._fail(result, exc)
                        return
                    result.exit_code = outcome.exit_code
                    result.tail = outcome.tail
                    if outcome.exit_code != 0 or outcome.timed_out or outcome.cancelled:
                        self._fail(result, self._command_error(node, command, outcome))
                        return
        except OSError as exc:  # the log cannot be written: a full disk, say
            where = {"file": log_path, "phase": node.phase, "workspace": node.workspace}
            self._fail(result, StorageError.from_os_error(exc, **where))
            return
        produced, missing = files.expand(node.cwd, spec.outputs)
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
            return
        if missing:
            self.warn(
                f"{node.label}: declared outputs were not produced: {', '.join(missing)}"
                " (only what was produced is cached)"
            )
        if caching:
            try:
                self.cache.store(
                    result.cache_key,
                    node.cwd,
                    produced,
                    log_path,
                    {"phase": node.phase, "workspace": node.workspace},
                )
            except OSError as exc:
                self.warn(f"{node.label}: could not store the cache entry: {exc}")
            else:
                if self.remote is not None:
                    self.remote.push(result.cache_key, self.cache, result.duration_so_far())

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

    def _line_sink(self, node: Node) -> Callable[[bytes], None]:
        return lambda data: self.reporter.line(node, data)

    def _service_session(self) -> ServiceSession:
        with self._lock:
            if self._services is None:
                from .services import ServiceSession

                self._services = ServiceSession(self.project.root)
            return self._services

    def _run_shell(self, node: Node, command: str, env: dict[str, str], log: Any) -> Outcome:
        """``command`` for ``node`` (a task, with its timeout, or a hook), killable by the run."""
        return run_shell(
            command,
            cwd=node.cwd,
            env=env,
            log=log,
            on_line=self._line_sink(node),
            table=self.table,
            cancelled=self.cancel,
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
            why = "interrupted" if self.interrupted else "stopped because another task failed"
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
        result.status = "interrupted" if self.interrupted else "failed"
        if self.cancel.is_set() and not self.interrupted and "stopped because" in error.message:
            result.status = "cancelled"
        result.error = error.message
        result.error_obj = error
        if result.exit_code is None:
            result.exit_code = error.exit_code

    def _replay(self, node: Node, log_path: Path) -> None:
        with log_path.open("rb") as handle:
            for line in handle:
                self.reporter.line(node, line)

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

    def _prepare_hooks(self) -> None:
        """Build the graphs of phases that whole-run hooks name, so errors show up front."""
        for name in ("before_all", "after_all", "on_success", "on_error"):
            for entry in self.project.hooks().get(name, []):
                phase = self.project.hook_phase(entry)
                if phase is not None:
                    build_graph(self.project, [phase], environment=self.options.environment)

    def _hook_node(self, name: str, phase: str = "") -> Node | None:
        entries = self.project.hooks().get(name)
        if not entries:
            return None
        return Node(
            id=f"hook:{name}",
            kind="hook",
            phase=phase,
            workspace=None,
            cwd=self.project.root,
            file=self.project.file,
            env=self.project.declared_env(None, None, self.options.environment),
            hook=name,
            entries=entries,
        )

    def _run_hook_list(self, name: str, extra_env: dict[str, str] | None = None) -> bool:
        node = self._hook_node(name)
        if node is None:
            return True
        if extra_env:
            node.env.update(extra_env)
        self.reporter.plan(1)
        result = self._execute_once(node)
        return result.status in GOOD

    def _run_on_error(self) -> None:
        failed = [r.label for r in self._results.values() if r.status == "failed"]
        self.cancel.clear()  # on_error must be able to run after fail-fast
        self._run_hook_list("on_error", {"GGEN_FAILED_TASKS": ",".join(failed)})

    def _execute_hook(self, node: Node, result: TaskResult) -> TaskResult:
        self.reporter.task_started(node)
        result.started_at = time.time()
        env = self._process_env(node)
        env["GGEN_HOOK"] = node.hook or ""
        for entry in node.entries:
            phase = self.project.hook_phase(entry)
            if phase is not None:
                graph = build_graph(self.project, [phase], environment=self.options.environment)
                self.reporter.plan(len(graph))
                if not self.run_graph(graph):
                    self._fail(
                        result,
                        TaskFailedError(
                            f"hook {node.hook}: phase {phase!r} did not succeed",
                            file=node.file,
                            phase=node.phase or None,
                        ),
                    )
                    break
                continue
            if not self._take_slot():
                result.status = "cancelled"
                break
            try:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                log_path = self.log_dir / f"{node.id.replace(':', '__')}.log"
                result.log = str(log_path)
                with log_path.open("ab") as log:
                    outcome = self._run_shell(node, entry, env, log)
            finally:
                self.slots.release()
            result.exit_code = outcome.exit_code
            if outcome.exit_code != 0 or outcome.cancelled or outcome.timed_out:
                self._fail(result, self._command_error(node, entry, outcome))
                break
        result.ended_at = time.time()
        self._record(node, result)
        self.reporter.task_finished(result)
        return result

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
        }

    def _stop_services(self) -> None:
        if self._services is not None:
            for problem in self._services.close():
                self.warn(problem)
            self._services = None

    def _prune_logs(self) -> None:
        logs = self.project.state_dir / "logs"
        if not logs.is_dir():
            return
        runs = sorted((p for p in logs.iterdir() if p.is_dir()), key=lambda p: p.name)
        for old in runs[:-KEEP_LOG_RUNS]:
            shutil.rmtree(old, ignore_errors=True)


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
