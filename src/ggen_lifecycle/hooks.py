"""Whole-run hooks (``before_all``, ``after_all``, ``on_success``, ``on_error``) as graph nodes."""

from __future__ import annotations

from .config import Project
from .graph import Node, build_graph

RUN_HOOKS = ("before_all", "after_all", "on_success", "on_error")


def check_run_hooks(project: Project, environment: str | None) -> None:
    """Build the graphs of the phases that whole-run hooks name, so errors show up front."""
    for name in RUN_HOOKS:
        for entry in project.hooks().get(name, []):
            phase = project.hook_phase(entry)
            if phase is not None:
                build_graph(project, [phase], environment=environment)


def run_hook_node(project: Project, name: str, environment: str | None) -> Node | None:
    """The node of the whole-run hook ``name``, or ``None`` when make.toml declares none."""
    entries = project.hooks().get(name)
    if not entries:
        return None
    return Node(
        id=f"hook:{name}",
        kind="hook",
        phase="",
        workspace=None,
        cwd=project.root,
        file=project.file,
        env=project.declared_env(None, None, environment),
        hook=name,
        entries=entries,
    )
