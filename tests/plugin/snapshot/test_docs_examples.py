"""Every example in docs/snapshots.md runs as written; snapshot projects are created with
--snapshot-update and must then pass unchanged."""

from __future__ import annotations

import pytest

from tests.plugin.scenario.doc_examples import Project, read_page

pytestmark = pytest.mark.integration

PAGE = read_page("snapshots.md")


@pytest.fixture(autouse=True)
def _not_an_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # see test_snapshots.py


@pytest.mark.parametrize("code", [pytest.param(c, id=f"snapshots.md:{n}") for n, c in PAGE.code])
def test_library_example(code: str) -> None:
    exec(compile(code, "<docs example>", "exec"), {"__name__": "__docs__"})


@pytest.mark.parametrize(
    "project", [pytest.param(p, id=f"{p.name}@snapshots.md:{p.line}") for p in PAGE.projects]
)
def test_example_project(project: Project, pytester: pytest.Pytester) -> None:
    for name, body in project.files.items():
        pytester.path.joinpath(name).write_text(body)
    pytester.runpytest(*project.args).assert_outcomes(**project.expect)
    if "--snapshot-update" in project.args:
        again = [a for a in project.args if a != "--snapshot-update"]
        pytester.runpytest(*again).assert_outcomes(**project.expect)
