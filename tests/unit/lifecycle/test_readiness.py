"""Production readiness: scoring, transitions, in-place updates, placeholders, thresholds."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggen_lifecycle import readiness as rd
from ggen_lifecycle.errors import ConfigError, ReadinessError
from ggen_lifecycle.model import DEFAULT_PLACEHOLDER_PATTERNS, Thresholds


def write_production(root: Path, text: str) -> Path:
    path = root / ".ggen" / "production.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_starter_set_scores_zero_and_every_critical_blocks(tmp_path: Path) -> None:
    result = rd.score(rd.load_requirements(tmp_path))
    assert result.score == 0.0
    assert {r.id for r in result.blockers} == {r.id for r in rd.STARTER if r.category == "critical"}


def test_score_uses_documented_weights(tmp_path: Path) -> None:
    write_production(
        tmp_path,
        """
starter = false
[[requirement]]
id = "a"
name = "A"
category = "critical"
status = "complete"
[[requirement]]
id = "b"
name = "B"
category = "important"
status = "needs-review"
[[requirement]]
id = "c"
name = "C"
category = "nice-to-have"
status = "placeholder"
""",
    )
    result = rd.score(rd.load_requirements(tmp_path))
    # (5*1 + 3*0.5 + 1*0.25) / (5+3+1) = 6.75 / 9
    assert result.score == 75.0
    assert result.blockers == []


def test_project_entries_override_and_extend_the_starter_set(tmp_path: Path) -> None:
    write_production(
        tmp_path,
        """
[[requirement]]
id = "tests"
status = "complete"
notes = "pytest in CI"
[[requirement]]
id = "gdpr-export"
name = "Users can export their data"
category = "important"
""",
    )
    by_id = {r.id: r for r in rd.load_requirements(tmp_path)}
    assert by_id["tests"].status == "complete"
    assert by_id["tests"].notes == "pytest in CI"
    assert by_id["tests"].category == "critical"
    assert by_id["gdpr-export"].status == "missing"
    assert len(by_id) == len(rd.STARTER) + 1


def test_new_requirement_without_category_is_an_error(tmp_path: Path) -> None:
    write_production(tmp_path, '[[requirement]]\nid = "test"\nstatus = "complete"\n')
    with pytest.raises(ReadinessError, match=r"needs both 'name' and 'category'.*'tests'"):
        rd.load_requirements(tmp_path)


def test_bad_status_in_file_names_line(tmp_path: Path) -> None:
    write_production(tmp_path, '[[requirement]]\nid = "tests"\nstatus = "done"\n')
    with pytest.raises(ConfigError) as info:
        rd.load_requirements(tmp_path)
    assert info.value.line == 3


def test_update_follows_transitions_and_keeps_comments(tmp_path: Path) -> None:
    path = write_production(
        tmp_path,
        '# our requirements\n[[requirement]]\nid = "tests"  # the big one\nstatus = "missing"\n',
    )
    with pytest.raises(ReadinessError, match=r"cannot go from 'missing' to 'complete'"):
        rd.update_status(tmp_path, "tests", "complete")
    assert rd.update_status(tmp_path, "tests", "needs-review") == "missing"
    assert rd.update_status(tmp_path, "tests", "complete", notes="92% coverage") == "needs-review"
    text = path.read_text()
    assert text.startswith("# our requirements\n")
    assert 'status = "complete"' in text
    assert 'notes = "92% coverage"' in text
    by_id = {r.id: r for r in rd.load_requirements(tmp_path)}
    assert by_id["tests"].status == "complete"


def test_update_of_a_starter_requirement_creates_the_file(tmp_path: Path) -> None:
    assert rd.update_status(tmp_path, "docs", "placeholder") == "missing"
    assert {r.id: r.status for r in rd.load_requirements(tmp_path)}["docs"] == "placeholder"
    with pytest.raises(ReadinessError, match=r"did you mean 'docs'"):
        rd.update_status(tmp_path, "doc", "placeholder")


def test_placeholders_are_found_and_skips_apply(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text(
        "x = 1\n# TODO: real auth\nraise NotImplementedError\n"
    )
    (tmp_path / "src" / "lib.rs").write_text("fn f() { unimplemented!() }\n")
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / "dep.js").write_text("// TODO vendored\n")
    (tmp_path / "blob.bin").write_bytes(b"\0TODO")
    found = rd.find_placeholders(tmp_path, list(DEFAULT_PLACEHOLDER_PATTERNS))
    assert [(p.file, p.line) for p in found] == [
        ("src/app.py", 2),
        ("src/app.py", 3),
        ("src/lib.rs", 1),
    ]
    only_py = rd.find_placeholders(tmp_path, [r"\bTODO\b"], include=["src/*.py"])
    assert [(p.file, p.line) for p in only_py] == [("src/app.py", 2)]


def test_validate_lists_every_reason(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("# FIXME\n")
    verdict = rd.validate(
        tmp_path,
        "production",
        Thresholds(min_score=50, max_placeholders=0, critical_complete=True),
        list(DEFAULT_PLACEHOLDER_PATTERNS),
        ["**/*"],
        [],
    )
    assert not verdict.ready
    assert "score 0 is below the minimum 50" in verdict.reasons
    assert "critical requirement 'tests' is missing" in verdict.reasons
    assert any("1 placeholders found, at most 0 allowed (main.py:1)" in r for r in verdict.reasons)


def test_validate_passes_when_thresholds_are_met(tmp_path: Path) -> None:
    write_production(
        tmp_path,
        'starter = false\n[[requirement]]\nid = "a"\nname = "A"\n'
        'category = "critical"\nstatus = "complete"\n',
    )
    verdict = rd.validate(tmp_path, "staging", Thresholds(min_score=90), [r"TODO"], ["*"], [])
    assert verdict.ready
    assert verdict.reasons == []


def test_cli_status_list_matches_the_scoring_table() -> None:
    from ggen_lifecycle.readiness_statuses import STATUSES

    assert tuple(rd.STATUS_CREDIT) == STATUSES
    assert set(rd.TRANSITIONS) == set(STATUSES)
