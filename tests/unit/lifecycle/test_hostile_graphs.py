"""Hostile make.toml shapes end quickly: long dependency chains, symlink loops under ``**``
inputs, globs that point out of the task's directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ggen_lifecycle import files
from ggen_lifecycle.errors import ConfigError
from ggen_lifecycle.graph import build_graph, render
from ggen_lifecycle.runner import Runner, RunOptions

from .helpers import project_from

# A hang here is the failure: each of these took minutes or forever before.
pytestmark = pytest.mark.timeout(120)


def chain(length: int) -> str:
    tables = ['[lifecycle.p0]\ncommand = "true"\n']
    tables += [f'[lifecycle.p{i}]\ndepends_on = ["p{i - 1}"]\n' for i in range(1, length)]
    return "".join(tables)


def test_a_thousand_phase_chain_builds_orders_and_plans(tmp_path: Path) -> None:
    # Was: RecursionError while building the graph (one Python frame per phase).
    project = project_from(tmp_path, chain(1000))
    graph = build_graph(project, ["p999"])
    order = [node.id for node in graph.order()]
    assert order == [f"p{i}" for i in range(1000)]
    assert render(graph, "dot").count(" -> ") == 999
    plan = Runner(project, RunOptions()).plan(["p999"])
    assert [step["id"] for step in plan] == order


def test_a_thousand_phase_chain_runs(tmp_path: Path) -> None:
    project = project_from(tmp_path, chain(1000))
    summary = Runner(project, RunOptions(jobs=2)).run(["p999"])
    assert summary.status == "success"
    assert [r.id for r in summary.results] == [f"p{i}" for i in range(1000)]


def test_a_failure_early_in_a_long_chain_skips_the_rest(tmp_path: Path) -> None:
    project = project_from(tmp_path, chain(300).replace('command = "true"', 'command = "false"'))
    summary = Runner(project, RunOptions(jobs=2)).run(["p299"])
    assert summary.status == "failed"
    assert [r.status for r in summary.results].count("skipped") == 299


def test_double_star_inputs_ignore_links_to_ancestors(tmp_path: Path) -> None:
    (tmp_path / "src/a").mkdir(parents=True)
    (tmp_path / "src/a/f.c").write_text("int f;")
    (tmp_path / "src/top.c").write_text("int t;")
    os.symlink("..", tmp_path / "src/a/up1")
    os.symlink("../..", tmp_path / "src/a/up2")
    found, unmatched = files.expand(tmp_path, ["src/**/*.c", "src/**", "**/f.c"])
    assert found == ["src/a/f.c", "src/top.c"]
    assert unmatched == []


@pytest.mark.parametrize(
    ("key", "pattern"),
    [("inputs", "/etc/**"), ("inputs", "../other/**"), ("outputs", "/tmp/out"), ("outputs", "!/x")],
)
def test_globs_leaving_the_task_directory_are_refused(
    tmp_path: Path, key: str, pattern: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        project_from(
            tmp_path,
            f'[lifecycle.build]\ncommand = "true"\ncwd = "missing"\n{key} = ["{pattern}"]\n',
        )
    error = caught.value
    assert error.file == tmp_path / "make.toml"
    assert error.line == 4
    assert f"{key} glob {pattern!r} must be relative" in error.message


def test_a_missing_cwd_with_a_recursive_input_plans_and_fails_cleanly(tmp_path: Path) -> None:
    project = project_from(
        tmp_path, '[lifecycle.build]\ncommand = "true"\ncwd = "missing"\ninputs = ["**"]\n'
    )
    plan = Runner(project, RunOptions()).plan(["build"])
    assert plan[0]["cache"] == "miss"
    summary = Runner(project, RunOptions()).run(["build"])
    assert summary.results[0].error is not None
    assert "working directory" in summary.results[0].error
