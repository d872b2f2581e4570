"""Every example in docs/scenarios.md runs as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom.scenarios.files import load_scenario_file
from tests.plugin.scenario.doc_examples import Project, read_page

pytestmark = pytest.mark.integration

PAGE = read_page("scenarios.md")


@pytest.mark.parametrize("code", [pytest.param(c, id=f"scenarios.md:{n}") for n, c in PAGE.code])
def test_library_example(code: str) -> None:
    exec(compile(code, "<docs example>", "exec"), {"__name__": "__docs__"})


@pytest.mark.parametrize(
    "text", [pytest.param(t, id=f"scenarios.md:{n}") for n, t in PAGE.scenario_files]
)
def test_scenario_file_snippet_is_valid(text: str, tmp_path: Path) -> None:
    path = tmp_path / "snippet.scenario.toml"
    path.write_text(text)
    assert load_scenario_file(path)


@pytest.mark.parametrize(
    "project", [pytest.param(p, id=f"{p.name}@scenarios.md:{p.line}") for p in PAGE.projects]
)
def test_example_project(project: Project, pytester: pytest.Pytester) -> None:
    for name, body in project.files.items():
        pytester.path.joinpath(name).write_text(body)
    result = pytester.runpytest(*project.args)
    result.assert_outcomes(**project.expect)


def test_every_kind_of_example_was_found() -> None:
    assert len(PAGE.code) >= 3
    assert {p.name for p in PAGE.projects} >= {"marker", "files", "failing", "repeat"}
