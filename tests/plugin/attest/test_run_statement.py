"""The run-level statement (in-toto test-result predicate), serially and under xdist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_cleanroom.attest import dsse
from pytest_cleanroom.attest.verify import verify

pytest_plugins = ("pytester",)

OUTCOMES = """
import warnings
import pytest

def test_pass():
    pass

def test_fail():
    assert 1 == 2

def test_warn():
    warnings.warn(UserWarning("careful"))

def test_skip():
    pytest.skip("not here")

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False

@pytest.fixture
def broken():
    yield
    raise RuntimeError("teardown breaks")

def test_teardown_error(broken):
    pass
"""


def run_statement(directory: Path) -> dict[str, object]:
    envelope = dsse.parse_envelope((directory / "run.intoto.json").read_bytes())
    data: dict[str, object] = json.loads(envelope.payload)
    return data


def test_outcomes_are_summarised_and_verify(pytester: pytest.Pytester) -> None:
    # (The same under xdist: test_attestations.py::test_xdist_two_workers_then_verify.)
    pytester.makepyfile(test_outcomes=OUTCOMES)
    result = pytester.runpytest_subprocess("--cleanroom-attest=att")
    result.assert_outcomes(passed=3, failed=1, skipped=1, xfailed=1, errors=1, warnings=1)
    directory = pytester.path / "att"
    statement = run_statement(directory)
    assert statement["predicateType"] == "https://in-toto.io/attestation/test-result/v0.1"
    predicate = statement["predicate"]
    assert isinstance(predicate, dict)
    assert predicate["result"] == "FAILED"
    assert predicate["passedTests"] == ["test_outcomes.py::test_pass"]
    assert predicate["warnedTests"] == ["test_outcomes.py::test_warn"]
    assert predicate["failedTests"] == [
        "test_outcomes.py::test_fail",
        "test_outcomes.py::test_teardown_error",
    ]
    invocation = predicate["configuration"][0]
    assert invocation["name"] == "pytest-invocation"
    assert "--cleanroom-attest=att" in invocation["annotations"]["args"]
    assert statement["subject"] == []  # no test used a cleanroom
    report = verify(directory)
    assert report.ok, report.failures()
    result.stdout.fnmatch_lines(
        ["*cleanroom attestations*", f"verify: ggen attest verify {directory} --key *"]
    )


def test_a_passing_run_is_passed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.runpytest("--cleanroom-attest=att").assert_outcomes(passed=1)
    predicate = run_statement(pytester.path / "att")["predicate"]
    assert isinstance(predicate, dict)
    assert predicate["result"] == "PASSED"


def test_previous_envelopes_are_removed_and_other_files_kept(pytester: pytest.Pytester) -> None:
    directory = pytester.path / "att"
    directory.mkdir()
    (directory / "stale-0123.intoto.json").write_text("{}")
    (directory / "notes.txt").write_text("mine")
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.runpytest(f"--cleanroom-attest={directory}").assert_outcomes(passed=1)
    assert sorted(p.name for p in directory.iterdir()) == [
        "cleanroom-attest.pub",
        "notes.txt",
        "run.intoto.json",
    ]
    assert verify(directory).ok


def test_ini_keys_are_relative_to_the_ini_file(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncleanroom_attest = out/att\ncleanroom_report = out/r.json\n")
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert (pytester.path / "out" / "att" / "run.intoto.json").is_file()
    report = json.loads((pytester.path / "out" / "r.json").read_text())
    assert report["commands"] == []


def test_collect_only_leaves_a_previous_run_alone(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.runpytest("--cleanroom-attest=att").assert_outcomes(passed=1)
    before = {p.name: p.read_bytes() for p in (pytester.path / "att").iterdir()}
    result = pytester.runpytest("--co", "--cleanroom-attest=att", "--cleanroom-report=r.json")
    assert result.ret == 0
    assert {p.name: p.read_bytes() for p in (pytester.path / "att").iterdir()} == before
    assert not (pytester.path / "r.json").exists()
