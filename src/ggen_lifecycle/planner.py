"""The ``--dry-run`` planner: the steps a run would take, in order, with each task's cache key
and whether the cache holds it now."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import files
from .cache import TaskCache, task_key
from .config import Project
from .graph import Graph, Node, build_graph
from .hooks import run_hook_node


class Planner:
    """Plans one invocation of ``project``; asks ``cache`` (never its storage) about each key."""

    def __init__(
        self,
        project: Project,
        cache: TaskCache,
        *,
        environment: str | None,
        no_cache: bool,
        memo: files.HashMemo | None = None,
    ) -> None:
        self.project = project
        self.cache = cache
        self.environment = environment
        self.no_cache = no_cache
        self.memo = memo
        self._keys: dict[str, str] = {}
        self._steps: list[dict[str, Any]] = []

    def plan(self, graphs: Sequence[Graph]) -> list[dict[str, Any]]:
        """The steps of a run of ``graphs`` (one per phase): ``before_all``, each phase's tasks
        with their hooks, ``after_all``, then ``on_success`` and ``on_error`` marked with
        ``"when"``."""
        self._hook("before_all", None)
        for graph in graphs:
            self._graph(graph, None)
        self._hook("after_all", None)
        self._hook("on_success", "on success")
        self._hook("on_error", "on failure")
        return self._steps

    def _hook(self, name: str, when: str | None) -> None:
        node = run_hook_node(self.project, name, self.environment)
        if node is not None:
            self._node(node, when)

    def _graph(self, graph: Graph, when: str | None) -> list[str]:
        """Add the steps of ``graph`` not already planned; returns their ids."""
        added: list[str] = []
        for node in graph.order():
            added.extend(self._node(node, when))
        return added

    def _node(self, node: Node, when: str | None) -> list[str]:
        if node.id in self._keys:
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
        self._keys[node.id] = ""
        self._steps.append(step)
        added = [node.id]
        if node.kind == "task" and node.spec is not None:
            step["cache_key"], step["cache"] = self._cache_use(node)
        if node.kind == "hook":
            step["runs"] = self._hook_runs(node, when, added)
        return added

    def _cache_use(self, node: Node) -> tuple[str, str]:
        """The task's key and ``hit``, ``miss`` or ``off``, as the run would see them now."""
        assert node.spec is not None
        dependency_keys = [self._keys.get(d, "") for d in node.deps]
        key = task_key(node, self.project.root, dependency_keys, self.memo)
        self._keys[node.id] = key
        if not node.spec.cache_enabled:
            return key, "off"
        if self.no_cache:
            return key, "miss"
        return key, "hit" if self.cache.would_hit(key) else "miss"

    def _hook_runs(self, node: Node, when: str | None, added: list[str]) -> list[dict[str, Any]]:
        """A hook's entries: commands, and phases with the ids of the steps they add."""
        runs: list[dict[str, Any]] = []
        for entry in node.entries:
            phase = self.project.hook_phase(entry)
            if phase is None:
                runs.append({"command": entry})
                continue
            graph = build_graph(self.project, [phase], environment=self.environment)
            steps = self._graph(graph, when)
            runs.append({"phase": phase, "steps": steps})
            added.extend(steps)
        return runs
