"""The task graph: one node per (phase, workspace), plus hook nodes around phases.

Cycles between phases (through ``depends_on`` or hooks) and between workspaces are found before
anything runs and reported as a chain, ``build -> lint -> build``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .config import Project
from .errors import CycleError, UnknownWorkspaceError
from .model import PhaseSpec

NodeKind = Literal["task", "hook"]


@dataclass
class Node:
    """Something the executor runs: a phase in one workspace, or the hooks around a phase."""

    id: str
    kind: NodeKind
    phase: str
    workspace: str | None
    cwd: Path
    file: Path
    env: dict[str, str]
    commands: list[str] = field(default_factory=list)
    spec: PhaseSpec | None = None
    hook: str | None = None  # "before_build", ...
    entries: list[str] = field(default_factory=list)  # hook entries: phase names or commands
    deps: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """``web:build``; ``build`` at the project root; ``before_build`` for hooks."""
        if self.kind == "hook":
            return self.hook or self.id
        return f"{self.workspace}:{self.phase}" if self.workspace else self.phase


def task_id(phase: str, workspace: str | None) -> str:
    return f"{phase}:{workspace}" if workspace else phase


@dataclass
class Graph:
    """Nodes in insertion order; :meth:`order` gives a topological order."""

    nodes: dict[str, Node] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def tasks(self) -> list[Node]:
        return [n for n in self.order() if n.kind == "task"]

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {n: [] for n in self.nodes}
        for node in self.nodes.values():
            for dep in node.deps:
                out[dep].append(node.id)
        return out

    def order(self) -> list[Node]:
        """Topological order, stable with respect to insertion; :class:`CycleError` on a loop."""
        chain = find_cycle({n.id: n.deps for n in self.nodes.values()})
        if chain:
            raise CycleError(f"dependency cycle between tasks: {' -> '.join(chain)}", chain=chain)
        seen: set[str] = set()
        out: list[Node] = []
        for start in self.nodes:
            if start in seen:
                continue
            seen.add(start)
            # Iterative depth-first post-order: a chain of thousands of phases needs no recursion.
            stack: list[tuple[str, Iterator[str]]] = [(start, iter(self.nodes[start].deps))]
            while stack:
                node_id, deps = stack[-1]
                dep = next(deps, None)
                if dep is None:
                    stack.pop()
                    out.append(self.nodes[node_id])
                elif dep not in seen:
                    seen.add(dep)
                    stack.append((dep, iter(self.nodes[dep].deps)))
        return out


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle in ``edges`` as a closed chain ``[a, b, a]``, or ``None``. Iterative DFS."""
    color: dict[str, int] = {}
    for start in edges:
        if color.get(start):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(start, iter(edges.get(start, [])))]
        path = [start]
        color[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                color[node] = 2
                continue
            state = color.get(child, 0)
            if state == 1:
                return [*path[path.index(child) :], child]
            if state == 0:
                color[child] = 1
                path.append(child)
                stack.append((child, iter(edges.get(child, []))))
    return None


def check_cycles(project: Project) -> None:
    """Raise :class:`CycleError` for a loop of workspaces or of phases (dependencies and hooks)."""
    ws_edges = {name: list(ws.depends_on) for name, ws in project.spec.workspace.items()}
    chain = find_cycle(ws_edges)
    if chain:
        raise CycleError(
            f"dependency cycle between workspaces: {' -> '.join(chain)}",
            chain=chain,
            file=project.file,
            line=project.line_of(("workspace", chain[0], "depends_on")),
            workspace=chain[0],
        )
    reasons: dict[tuple[str, str], str] = {}
    edges: dict[str, list[str]] = {}
    hooks = project.hooks()
    for phase in project.declared_phases():
        targets: list[str] = []
        specs = [project.spec.lifecycle.get(phase)]
        specs += [s.lifecycle.get(phase) for _, s, _ in project.workspace_files.values()]
        for spec in specs:
            for dep in spec.depends_on if spec else []:
                targets.append(dep)
                reasons.setdefault((phase, dep), f"{phase} depends_on {dep}")
        for when in ("before", "after"):
            for entry in hooks.get(f"{when}_{phase}", []):
                hooked = project.hook_phase(entry)
                if hooked is not None:
                    targets.append(hooked)
                    reasons.setdefault((phase, hooked), f"{when}_{phase} runs {hooked}")
        edges[phase] = targets
    chain = find_cycle(edges)
    if chain:
        steps = [reasons[pair] for pair in itertools.pairwise(chain)]
        why = "; ".join(steps)
        through_hooks = any(" runs " in step for step in steps)
        kind = "hook recursion" if through_hooks else "dependency cycle between phases"
        raise CycleError(
            f"{kind}: {' -> '.join(chain)} ({why})",
            chain=chain,
            file=project.file,
            line=project.line_of(("lifecycle", chain[0])),
            phase=chain[0],
        )


def build_graph(
    project: Project,
    phases: Sequence[str],
    *,
    workspace: str | None = None,
    environment: str | None = None,
) -> Graph:
    """The graph that runs ``phases`` (and what they depend on), optionally in one workspace.

    With ``workspace``, the requested phases run in that workspace only, plus the tasks it needs
    (its workspace dependencies and phase dependencies).
    """
    for phase in phases:
        project.require_phase(phase)
    if workspace is not None:
        project.require_workspace(workspace)
    if environment is not None:
        project.require_environment(environment)
    check_cycles(project)
    builder = _Builder(project, environment)
    for phase in phases:
        targets = project.targets(phase)
        if workspace is not None:
            if workspace not in targets:
                shown = ", ".join(t or "(root)" for t in targets)
                raise UnknownWorkspaceError(
                    f"phase {phase!r} does not run in workspace {workspace!r} "
                    f"(it runs in: {shown})",
                    file=project.file,
                    phase=phase,
                    workspace=workspace,
                )
            targets = [workspace]
        for target in targets:
            builder.task(phase, target)
    builder.finish()
    graph = builder.graph
    graph.order()  # raises on a residual cycle
    return graph


class _Builder:
    def __init__(self, project: Project, environment: str | None) -> None:
        self.project = project
        self.environment = environment
        self.graph = Graph()
        self.hooks = project.hooks()

    def task(self, phase: str, workspace: str | None) -> str:
        """Add the task (phase, workspace) and, first, what it depends on; returns its id.

        :meth:`_steps` asks for each dependency by yielding it; this loop answers, keeping a stack
        of the pending steps instead of recursing (a chain of thousands of phases is fine).
        """
        stack = [self._steps(phase, workspace)]
        answer: str | None = None
        while True:
            try:
                wanted = stack[-1].send(answer)
            except StopIteration as finished:
                stack.pop()
                answer = finished.value
                if not stack:
                    return str(answer)
                continue
            answer = task_id(*wanted)
            if answer not in self.graph.nodes:
                stack.append(self._steps(*wanted))
                answer = None

    def _steps(
        self, phase: str, workspace: str | None
    ) -> Generator[tuple[str, str | None], str | None, str]:
        node_id = task_id(phase, workspace)
        if node_id in self.graph.nodes:
            return node_id
        found = self.project.phase_spec(phase, workspace)
        assert found is not None, (phase, workspace)
        spec, file = found
        cwd = self.project.workspace_dir(workspace)
        if spec.cwd:
            cwd = cwd / spec.cwd
        node = Node(
            id=node_id,
            kind="task",
            phase=phase,
            workspace=workspace,
            cwd=cwd,
            file=file,
            env=self.project.declared_env(workspace, spec, self.environment),
            commands=self.project.phase_commands(phase, workspace, spec, self.environment),
            spec=spec,
        )
        self.graph.nodes[node_id] = node
        deps: list[str] = []
        for dep in spec.depends_on:
            dep_targets = self.project.targets(dep)
            for target in [workspace] if workspace in dep_targets else dep_targets:
                deps.append(str((yield (dep, target))))
        if workspace is not None:
            phase_targets = self.project.targets(phase)
            for ws_dep in self.project.spec.workspace[workspace].depends_on:
                if ws_dep in phase_targets:
                    deps.append(str((yield (phase, ws_dep))))
        before = self.hook("before", phase)
        if before:
            deps.append(before)
        node.deps = list(dict.fromkeys(deps))
        return node_id

    def hook(self, when: str, phase: str) -> str | None:
        name = f"{when}_{phase}"
        entries = self.hooks.get(name)
        if not entries:
            return None
        node_id = f"hook:{name}"
        if node_id not in self.graph.nodes:
            self.graph.nodes[node_id] = Node(
                id=node_id,
                kind="hook",
                phase=phase,
                workspace=None,
                cwd=self.project.root,
                file=self.project.file,
                env=self.project.declared_env(None, None, self.environment),
                hook=name,
                entries=entries,
                commands=[e for e in entries if self.project.hook_phase(e) is None],
            )
        return node_id

    def finish(self) -> None:
        """Add ``after_PHASE`` hooks behind every task of their phase."""
        phases = list(dict.fromkeys(n.phase for n in self.graph if n.kind == "task"))
        for phase in phases:
            after = self.hook("after", phase)
            if after:
                self.graph.nodes[after].deps = [
                    n.id for n in self.graph if n.kind == "task" and n.phase == phase
                ]


def _quote_mermaid(text: str) -> str:
    return text.replace('"', "#quot;")


def _safe_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", text)


def render(graph: Graph, fmt: Literal["mermaid", "dot"]) -> str:
    """The graph as Mermaid (``flowchart``) or Graphviz DOT text; edges point at what runs first."""
    lines: list[str] = []
    if fmt == "mermaid":
        lines.append("flowchart TD")
        for node in graph.order():
            shape = ('{{"', '"}}') if node.kind == "hook" else ('["', '"]')
            lines.append(f"  {_safe_id(node.id)}{shape[0]}{_quote_mermaid(node.label)}{shape[1]}")
        for node in graph.order():
            for dep in node.deps:
                lines.append(f"  {_safe_id(dep)} --> {_safe_id(node.id)}")
    else:
        lines.append("digraph lifecycle {")
        lines.append("  rankdir=LR;")
        for node in graph.order():
            dot_shape = "hexagon" if node.kind == "hook" else "box"
            label = node.label.replace('"', '\\"')
            lines.append(f'  "{node.id}" [label="{label}", shape={dot_shape}];')
        for node in graph.order():
            for dep in node.deps:
                lines.append(f'  "{dep}" -> "{node.id}";')
        lines.append("}")
    return "\n".join(lines) + "\n"
