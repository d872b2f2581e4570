"""The terminal summary of the slowest sandboxed commands, and the records behind it."""

from __future__ import annotations

import re

import pytest

from pytest_cleanroom.pytest_plugin.records import CommandRecord, slowest_lines

COMMANDS = """
import pytest

@pytest.fixture
def built(cleanroom):
    cleanroom.run(["sh", "-c", "echo setup > built.txt"]).assert_success()
    return cleanroom

def test_slow(built):
    built.run(["sleep", "0.5"]).assert_success()

def test_fails(cleanroom):
    cleanroom.run(["sh", "-c", "exit 7"]).assert_exit_code(7)

def test_times_out(cleanroom):
    cleanroom.run(["sleep", "30"], timeout=0.5).assert_failure()

def test_no_commands(workspace):
    pass
"""

SUMMARY_LINE = re.compile(r"^\s*(\d+\.\d{3})s  (\S+(?: \S+)?)\s+(\S+::\S+)\s+(.*)$")


def summary(result: pytest.RunResult) -> list[tuple[float, str, str, str]]:
    lines = result.stdout.str().split("sandboxed commands (cleanroom) ", 1)[1].splitlines()[1:]
    rows = []
    for line in lines:
        match = SUMMARY_LINE.match(line)
        if match is None:
            break
        duration, outcome, nodeid, command = match.groups()
        rows.append((float(duration), outcome.strip(), nodeid.split("::")[1], command))
    return rows


def test_summary_lists_the_slowest_commands_of_every_phase(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(COMMANDS)
    result = pytester.runpytest("--cleanroom-seed=31337")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*= slowest 4 of 4 sandboxed commands (cleanroom) =*",
            "cleanroom seed 31337: replay with --cleanroom-seed=31337",
        ]
    )
    rows = summary(result)
    assert sorted((name, command, outcome) for _, outcome, name, command in rows) == [
        ("test_fails", "sh -c 'exit 7'", "exit 7"),
        ("test_slow", "sh -c 'echo setup > built.txt'", "exit 0"),
        ("test_slow", "sleep 0.5", "exit 0"),
        ("test_times_out", "sleep 30", "timeout"),
    ]
    durations = [duration for duration, *_ in rows]
    assert durations == sorted(durations, reverse=True)


@pytest.mark.parametrize("via", ["flag", "ini"])
def test_durations_limits_the_list(pytester: pytest.Pytester, via: str) -> None:
    pytester.makepyfile(COMMANDS)
    if via == "ini":
        pytester.makeini("[pytest]\ncleanroom_durations = 2\n")
        result = pytester.runpytest()
    else:
        result = pytester.runpytest("--cleanroom-durations=2")
    result.stdout.fnmatch_lines(["*= slowest 2 of 4 sandboxed commands (cleanroom) =*"])
    assert len(summary(result)) == 2


def test_durations_zero_hides_only_the_slowest_list(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(COMMANDS)
    result = pytester.runpytest("--cleanroom-durations=0", "--cleanroom-seed=4711")
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    assert "= slowest" not in out
    assert "sleep 0.5" not in out  # no command line is listed
    result.stdout.fnmatch_lines(
        [
            "*= 4 sandboxed commands (cleanroom) =*",
            "cleanroom: 4 commands on * under policy standard (sha256:*)",
            "cleanroom seed 4711: replay with --cleanroom-seed=4711",
        ]
    )


def test_durations_help_says_what_zero_hides(pytester: pytest.Pytester) -> None:
    help_text = " ".join(pytester.runpytest("--help").stdout.str().split())
    assert "0 hides that list; the policy and seed lines stay" in help_text


def test_no_summary_when_nothing_ran_in_a_sandbox(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain(workspace):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "sandboxed commands" not in result.stdout.str()


def record(nodeid: str, command: str, duration: float, **extra: object) -> CommandRecord:
    fields = {
        "nodeid": nodeid,
        "when": "call",
        "command": command,
        "exit_code": 0,
        "duration": duration,
        "timed_out": False,
        "limit_exceeded": None,
        "backend": "bwrap",
        "policy_name": "locked",
        "policy_digest": "sha256:00",
        "seed": 1,
        "peak_memory": None,
        "cpu_time": None,
    }
    fields.update(extra)
    return CommandRecord(**fields)  # type: ignore[arg-type]


def test_records_survive_a_round_trip_through_plain_dicts() -> None:
    original = record("t.py::a", "make", 1.5, limit_exceeded="memory", peak_memory=10)
    assert CommandRecord.from_dict(original.to_dict()) == original
    assert original.outcome == "limit memory"


def test_slowest_lines_sort_align_and_truncate() -> None:
    lines = slowest_lines(
        [
            record("t.py::fast", "true", 0.01),
            record("t.py::long_name", "x" * 200, 2.0, exit_code=2),
            record("t.py::mid", "make all", 0.5, timed_out=True),
            record("t.py::script", "python3 -c 'import os\nprint(1)'", 0.2),
        ],
        count=3,
    )
    assert lines == [
        "   2.000s  exit 2   t.py::long_name  " + "x" * 77 + "...",
        "   0.500s  timeout  t.py::mid        make all",
        "   0.200s  exit 0   t.py::script     python3 -c 'import os\\nprint(1)'",
    ]
