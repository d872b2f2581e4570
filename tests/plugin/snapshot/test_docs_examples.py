"""Every example in docs/snapshots.md runs as written; snapshot projects are created with
--snapshot-update and must then pass unchanged from another base temp directory, as on another
machine."""

from __future__ import annotations

import pytest

from tests.plugin.scenario.doc_examples import DOCS, Project, read_page

pytestmark = pytest.mark.integration

PAGE = read_page("snapshots.md")
PAGE_TEXT = (DOCS / "snapshots.md").read_text()


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
        for stored in pytester.path.glob("__snapshots__/*.ambr"):
            assert "/tmp/" not in stored.read_text(), stored.read_text()  # all normalised
        # A snapshot must not depend on where the run's temporary directories are: the second
        # run uses another --basetemp (pytester's default is the same directory both times).
        elsewhere = pytester.path.parent / "another-machine-basetemp"
        again = [a for a in project.args if a != "--snapshot-update"]
        result = pytester.runpytest(*again, f"--basetemp={elsewhere}")
        result.assert_outcomes(**project.expect)
        assert elsewhere.is_dir()  # the option took effect


def test_every_example_is_run() -> None:
    """The page's examples are all picked up: a block the reader misses would go untested."""
    assert [p.name for p in PAGE.projects] == ["snapshots", "options", "custom", "plain"]
    assert len(PAGE.code) == 2
    text_blocks = PAGE_TEXT.count("```text")
    assert text_blocks == 2  # the .ambr sample (checked below) and the tree format sketch


def test_stored_snapshot_sample_matches(pytester: pytest.Pytester) -> None:
    """The .ambr excerpt shown for test_build is what --snapshot-update writes."""
    project = PAGE.projects[0]
    for name, body in project.files.items():
        pytester.path.joinpath(name).write_text(body)
    pytester.runpytest(*project.args).assert_outcomes(**project.expect)
    stored = pytester.path.joinpath("__snapshots__", "test_outputs.ambr").read_text()
    sample = PAGE_TEXT.split("```text\n", 1)[1].split("```", 1)[0]
    assert sample in stored


def test_plain_syrupy_sample_matches(pytester: pytest.Pytester) -> None:
    """The plain-syrupy example stores what the text after it says."""
    project = next(p for p in PAGE.projects if p.name == "plain")
    for name, body in project.files.items():
        pytester.path.joinpath(name).write_text(body)
    pytester.runpytest(*project.args).assert_outcomes(**project.expect)
    stored = pytester.path.joinpath("__snapshots__", "test_plain.ambr").read_text()
    assert "| made in <workspace> in <duration>" in stored, stored
    assert "The stored tree reads `| made in <workspace> in <duration>`" in PAGE_TEXT
