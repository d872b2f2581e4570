"""The task graph: dependencies across phases and workspaces, cycles shown as chains."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggen_lifecycle.errors import CycleError, UnknownWorkspaceError
from ggen_lifecycle.graph import build_graph, find_cycle, render

from .helpers import project_from

MONOREPO = """
[lifecycle.build]
command = "make"
[lifecycle.test]
command = "make test"
depends_on = ["build"]
[lifecycle.deploy]
command = "deploy.sh"
workspaces = []
depends_on = ["test"]
"""
CHAIN = {"lib": [], "api": ["lib"], "web": ["api"]}


def deps_of(graph: object, node_id: str) -> set[str]:
    return set(graph.nodes[node_id].deps)  # type: ignore[attr-defined]


def test_phase_and_workspace_dependencies(tmp_path: Path) -> None:
    project = project_from(tmp_path, MONOREPO, workspaces=CHAIN)
    graph = build_graph(project, ["test"])
    assert set(graph.nodes) == {
        "build:lib",
        "build:api",
        "build:web",
        "test:lib",
        "test:api",
        "test:web",
    }
    assert deps_of(graph, "build:web") == {"build:api"}
    assert deps_of(graph, "build:api") == {"build:lib"}
    assert deps_of(graph, "test:web") == {"build:web", "test:api"}
    order = [n.id for n in graph.order()]
    for node in graph:
        for dep in node.deps:
            assert order.index(dep) < order.index(node.id)


def test_root_phase_depends_on_every_workspace_task(tmp_path: Path) -> None:
    project = project_from(tmp_path, MONOREPO, workspaces=CHAIN)
    graph = build_graph(project, ["deploy"])
    assert deps_of(graph, "deploy") == {"test:lib", "test:api", "test:web"}
    assert graph.nodes["deploy"].cwd == tmp_path


def test_workspace_filter_keeps_what_it_needs(tmp_path: Path) -> None:
    project = project_from(tmp_path, MONOREPO, workspaces=CHAIN)
    graph = build_graph(project, ["build"], workspace="api")
    assert set(graph.nodes) == {"build:api", "build:lib"}
    with pytest.raises(UnknownWorkspaceError, match=r"did you mean 'web'"):
        build_graph(project, ["build"], workspace="wbe")


def test_phase_cycle_is_reported_as_a_chain_before_running(tmp_path: Path) -> None:
    project = project_from(
        tmp_path,
        """
        [lifecycle.a]
        command = "true"
        depends_on = ["c"]
        [lifecycle.b]
        command = "true"
        depends_on = ["a"]
        [lifecycle.c]
        command = "true"
        depends_on = ["b"]
        """,
    )
    with pytest.raises(CycleError) as info:
        build_graph(project, ["a"])
    assert info.value.chain == ["a", "c", "b", "a"]
    assert "a -> c -> b -> a" in str(info.value)
    assert info.value.file == tmp_path / "make.toml"


def test_workspace_cycle_is_reported_as_a_chain(tmp_path: Path) -> None:
    project = project_from(
        tmp_path,
        """
        [lifecycle.build]
        command = "true"
        """,
        workspaces={"a": ["b"], "b": ["a"]},
    )
    with pytest.raises(CycleError, match=r"between workspaces: a -> b -> a") as info:
        build_graph(project, ["build"])
    assert info.value.line == 3


def test_hook_recursion_is_reported_with_the_hooks(tmp_path: Path) -> None:
    project = project_from(
        tmp_path,
        """
        [lifecycle.build]
        command = "true"
        [lifecycle.lint]
        command = "true"
        [hooks]
        before_build = ["lint"]
        after_lint = ["build"]
        """,
    )
    with pytest.raises(CycleError) as info:
        build_graph(project, ["lint"])
    message = str(info.value)
    assert "hook recursion" in message
    assert "build -> lint -> build" in message or "lint -> build -> lint" in message
    assert "before_build runs lint" in message
    assert "after_lint runs build" in message


def test_hooks_become_nodes_around_their_phase(tmp_path: Path) -> None:
    project = project_from(
        tmp_path,
        """
        [lifecycle.build]
        command = "true"
        [hooks]
        before_build = ["echo before"]
        after_build = ["echo after"]
        """,
        workspaces=["a", "b"],
    )
    graph = build_graph(project, ["build"])
    assert deps_of(graph, "build:a") == {"hook:before_build"}
    assert deps_of(graph, "hook:after_build") == {"build:a", "build:b"}


def test_find_cycle_on_a_dag_is_none() -> None:
    assert find_cycle({"a": ["b", "c"], "b": ["c"], "c": []}) is None
    assert find_cycle({"a": ["a"]}) == ["a", "a"]


def test_render_mermaid_and_dot(tmp_path: Path) -> None:
    project = project_from(tmp_path, MONOREPO, workspaces=CHAIN)
    graph = build_graph(project, ["build"])
    mermaid = render(graph, "mermaid")
    assert mermaid.startswith("flowchart TD\n")
    assert "build_lib --> build_api" in mermaid
    assert 'build_web["web:build"]' in mermaid
    dot = render(graph, "dot")
    assert dot.startswith("digraph lifecycle {")
    assert '"build:api" -> "build:web";' in dot
