"""The scheduler: starts each task of a graph once its dependencies have settled, and the run's
stop switch (fail-fast, Ctrl-C) that every part of a run consults."""

from __future__ import annotations

import heapq
import queue
import threading
from collections.abc import Callable

from .graph import Graph, Node
from .process import ProcessTable
from .results import BAD, GOOD, TaskResult


class Interrupted(Exception):  # noqa: N818 - a signal, not an error
    """Raised inside the runner when Ctrl-C (or SIGTERM) stopped the run."""


class RunControl:
    """The slots (``jobs`` commands at once), the processes alive and whether the run stops.

    ``cancel`` is set on fail-fast and on Ctrl-C: nothing new starts. ``interrupted`` says it was
    Ctrl-C (or SIGTERM).
    """

    def __init__(self, jobs: int) -> None:
        self.slots = threading.BoundedSemaphore(max(1, jobs))
        self.cancel = threading.Event()
        self.interrupted = False
        self.table = ProcessTable()

    @property
    def reason(self) -> str:
        """Why a task was not run: ``interrupted`` or ``stopped after a failure``."""
        return "interrupted" if self.interrupted else "stopped after a failure"

    def stop_running(self) -> None:
        """Start nothing new and kill every running process tree (in the background)."""
        self.cancel.set()
        threading.Thread(target=self.table.kill_all, name="ggen-cancel", daemon=True).start()

    def take_slot(self) -> bool:
        """Wait for a free slot; False (holding none) when the run stops meanwhile."""
        while not self.slots.acquire(timeout=0.05):
            if self.cancel.is_set():
                return False
        if self.cancel.is_set():
            self.slots.release()
            return False
        return True

    def release_slot(self) -> None:
        self.slots.release()


class Scheduler:
    """Runs graphs of one invocation: ``execute`` runs a node (in a thread of its own) and
    ``finish`` records a node that is not run (status, reason) and returns its result."""

    def __init__(
        self,
        control: RunControl,
        execute: Callable[[Node], TaskResult],
        finish: Callable[[Node, str, str], TaskResult],
        *,
        keep_going: bool,
    ) -> None:
        self.control = control
        self.execute = execute
        self.finish = finish
        self.keep_going = keep_going
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def run_graph(self, graph: Graph) -> bool:
        """Run every node of ``graph`` in dependency order; True when all succeeded.

        Each node waits for a count of unsettled dependencies, so scheduling costs O(nodes +
        edges) however long the chains are.
        """
        control = self.control
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
                    settle(node.id, self.finish(node, "skipped", reason).status)
                elif control.cancel.is_set():
                    continue  # never started: reported as cancelled below
                else:
                    running.add(node.id)
                    self._start(node, done)
            if not running:
                break
            try:
                node_id, result = done.get(timeout=0.1)
            except queue.Empty:
                if control.interrupted:
                    raise Interrupted() from None
                continue
            running.discard(node_id)
            settle(node_id, result.status)
            if result.status == "failed" and not self.keep_going:
                control.stop_running()
        for node in order:
            if node.id not in status:
                reason = f"not run: {control.reason}"
                status[node.id] = self.finish(node, "cancelled", reason).status
        return all(s in GOOD for s in status.values())

    def _start(self, node: Node, done: queue.Queue[tuple[str, TaskResult]]) -> None:
        def work() -> None:
            done.put((node.id, self.execute(node)))

        thread = threading.Thread(target=work, name=f"task-{node.id}")
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def join(self) -> None:
        """Wait for every task thread, killing what still runs every 0.2 s."""
        while True:
            with self._lock:
                alive = [t for t in self._threads if t.is_alive()]
            if not alive:
                return
            for thread in alive:
                thread.join(timeout=0.2)
            self.control.table.kill_all(grace=0.5)
