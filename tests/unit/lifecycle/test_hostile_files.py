"""Hostile state.json, make.toml values and production.toml: a warning or one typed error
naming the file and field, never a traceback and never a half-written file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ggen_lifecycle import readiness as rd
from ggen_lifecycle.errors import ConfigError, ReadinessError, StorageError
from ggen_lifecycle.readiness_cli import printable
from ggen_lifecycle.runner import Runner, RunOptions
from ggen_lifecycle.state import StateStore

from .helpers import project_from, write_project

PHASE = '[lifecycle.build]\ncommand = "true"\n'

BAD_STATES = {
    "not UTF-8": b'\xff\xfe{"format": 1}',
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "records of the wrong type": b'{"format": 1, "runs": ["x", 1], "tasks": [3]}',
    "a field of the wrong type": b'{"format": 1, "runs": [{"run_id": 1}], "tasks": []}',
    "phases that are not names": b'{"format": 1, "runs": [{"phases": [null]}], "tasks": []}',
    "a 5,000-digit number": b'{"format": 1, "runs": [], "tasks": [], "x": ' + b"9" * 5000 + b"}",
}


@pytest.mark.parametrize("content", BAD_STATES.values(), ids=BAD_STATES.keys())
def test_a_corrupted_state_is_set_aside_and_the_run_goes_on(tmp_path: Path, content: bytes) -> None:
    project = project_from(tmp_path, PHASE)
    (tmp_path / ".ggen").mkdir(exist_ok=True)
    (tmp_path / ".ggen/state.json").write_bytes(content)
    summary = Runner(project, RunOptions()).run(["build"])
    assert summary.status == "success"
    (warning,) = [w for w in summary.warnings if "state.json" in w]
    assert "is corrupted" in warning
    assert "moved it to state.json.corrupt-" in warning
    (aside,) = (tmp_path / ".ggen").glob("state.json.corrupt-*")
    assert aside.read_bytes() == content  # kept for a human to look at
    state = json.loads((tmp_path / ".ggen/state.json").read_text())
    assert [r["result"] for r in state["runs"]] == ["success"]


@pytest.mark.parametrize("content", BAD_STATES.values(), ids=BAD_STATES.keys())
def test_reading_a_corrupted_state_warns_instead_of_failing(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "state.json").write_bytes(content)
    warnings: list[str] = []
    assert StateStore(tmp_path / "state.json", warn=warnings.append).read()["runs"] == []
    assert len(warnings) == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"' + "9" * 400 + '"', "below 2**63 bytes"),
        ("9" * 400, "below 2**63 bytes"),
        ('"1e400GiB"', "is not a size"),
        ("0", "size must be positive"),
    ],
)
def test_max_size_out_of_range_is_one_config_error(
    tmp_path: Path, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        project_from(tmp_path, f"{PHASE}[cache]\nmax_size = {value}\n")
    assert caught.value.line == 4
    assert "key 'max_size' in [cache]" in caught.value.message
    assert message in caught.value.message
    assert len(caught.value.message) < 300  # the 400 digits are not echoed whole


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = " + "9" * 5000 + "\n", "Exceeds the limit (4300 digits)"),
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        (PHASE + "timeout = " + "9" * 400 + "\n", "key 'timeout' in [lifecycle.build]"),
        (PHASE + "timeout = 1e308\n", "less than or equal to"),
    ],
)
def test_numbers_and_nesting_out_of_range_are_config_errors(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        project_from(tmp_path, text)
    assert caught.value.file == tmp_path / "make.toml"
    assert message in caught.value.message


def production(root: Path, text: str) -> Path:
    write_project(root, PHASE)
    path = root / ".ggen/production.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_notes_with_control_characters_are_written_escaped(tmp_path: Path) -> None:
    write_project(tmp_path, PHASE)
    notes = "bell\x07 escape\x1b[2J tab\t cr\r nul\x00 del\x7f"
    rd.update_status(tmp_path, "tests", "needs-review", notes)
    (tests,) = [r for r in rd.load_requirements(tmp_path) if r.id == "tests"]
    assert (tests.status, tests.notes) == ("needs-review", notes)
    assert "\x1b" not in (tmp_path / ".ggen/production.toml").read_text()
    assert printable(tests.notes) == "bell\\x07 escape\\x1b[2J tab\\t cr\\r nul\\x00 del\\x7f"


def test_an_id_line_inside_multiline_notes_is_never_edited(tmp_path: Path) -> None:
    # The line editor finds keys line by line; here it would take the 'id' inside the notes
    # (and a stray ''' would hide the real entry): the edit is checked and refused instead.
    text = (
        '[[requirement]]\nid = "docs"\nnotes = """it\'s \'\'\' odd\nid = "tests"\n"""\n\n'
        '[[requirement]]\nid = "tests"\nstatus = "missing"\n'
    )
    path = production(tmp_path, text)
    with pytest.raises(ReadinessError) as caught:
        rd.update_status(tmp_path, "tests", "needs-review")
    assert caught.value.file == path
    assert 'set status = "needs-review" in the [[requirement]] with id = "tests" by hand' in str(
        caught.value
    )
    assert path.read_text() == text


def test_multiline_notes_holding_key_lines_survive_an_edit(tmp_path: Path) -> None:
    text = '[[requirement]]\nid = "tests"\nnotes = """\nstatus = "complete"\n"""\n'
    production(tmp_path, text)
    rd.update_status(tmp_path, "tests", "needs-review")
    (tests,) = [r for r in rd.load_requirements(tmp_path) if r.id == "tests"]
    assert tests.status == "needs-review"
    assert tests.notes == 'status = "complete"\n'


def test_notes_that_are_not_text_are_refused(tmp_path: Path) -> None:
    write_project(tmp_path, PHASE)
    with pytest.raises(ReadinessError, match="not valid UTF-8"):
        rd.update_status(tmp_path, "tests", "needs-review", "bad \udcff byte")
    assert not (tmp_path / ".ggen/production.toml").exists()


def test_a_catastrophically_backtracking_placeholder_pattern_ends_with_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rd, "SCAN_SECONDS_PER_FILE", 0.5)
    (tmp_path / "src.txt").write_text("ok\n" + "a" * 40 + "b\n")
    with pytest.raises(ReadinessError) as caught:
        rd.find_placeholders(tmp_path, ["TODO", "(a+)+$"])
    assert "'(a+)+$' took over 0.5 s on src.txt line 2" in str(caught.value)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("(", "not a valid regular expression"), ("a" * 1001, "longer than 1000 characters")],
)
def test_bad_placeholder_patterns_are_readiness_errors(
    tmp_path: Path, pattern: str, message: str
) -> None:
    with pytest.raises(ReadinessError, match=message):
        rd.find_placeholders(tmp_path, [pattern])


def test_a_link_planted_in_ggen_is_not_written_through(tmp_path: Path) -> None:
    project = project_from(tmp_path / "project", PHASE)
    (tmp_path / "project/.ggen").mkdir()
    victim = tmp_path / "victim"
    (tmp_path / "project/.ggen/.gitignore").symlink_to(victim)  # dangling: exists() is False
    with pytest.raises(StorageError, match=r"symbolic link to .*victim, out of its directory"):
        Runner(project, RunOptions()).run(["build"])
    assert not victim.exists()
