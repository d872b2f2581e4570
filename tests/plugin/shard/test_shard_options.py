"""``--cleanroom-shard`` driven through pytester: engines' variables, xdist, empty shards,
durations recorded, bad input."""

from __future__ import annotations

import json

import pytest

from tests.plugin.attest.conftest import statement_of

SUITE = """
import pytest

@pytest.mark.parametrize("i", range(6))
def test_six(i):
    pass
"""


def selected(result: pytest.RunResult) -> set[str]:
    return {
        line.split(" PASSED")[0] for line in result.outlines if " PASSED" in line and "::" in line
    }


def test_auto_takes_the_indexed_jobs_variables(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(SUITE)
    parts = []
    for index in range(3):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        monkeypatch.setenv("CLEANROOM_SHARD_COUNT", "3")
        result = pytester.runpytest("--cleanroom-shard=auto", "-v")
        result.stdout.fnmatch_lines(
            [f"cleanroom shard {index + 1}/3 (JOB_COMPLETION_INDEX): 2 of 6 tests"]
        )
        parts.append(selected(result))
    assert sum(len(p) for p in parts) == 6
    assert len(set().union(*parts)) == 6


def test_gitlabs_variables(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(SUITE)
    monkeypatch.delenv("JOB_COMPLETION_INDEX", raising=False)
    monkeypatch.setenv("CI_NODE_INDEX", "2")
    monkeypatch.setenv("CI_NODE_TOTAL", "2")
    result = pytester.runpytest("--cleanroom-shard=auto")
    result.stdout.fnmatch_lines(["cleanroom shard 2/2 (CI_NODE_INDEX): 3 of 6 tests"])
    result.assert_outcomes(passed=3, deselected=3)


def test_an_empty_shard_succeeds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_only(): pass")
    result = pytester.runpytest("--cleanroom-shard=3/3")  # one test: its midpoint is in 2/3
    result.stdout.fnmatch_lines(["cleanroom shard 3/3 (option): 0 of 1 tests"])
    assert result.ret == 0


def test_durations_are_recorded_and_then_balance_the_split(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import time, pytest

        @pytest.mark.parametrize("i", range(4))
        def test_slow(i):
            time.sleep(0.3)

        @pytest.mark.parametrize("i", range(8))
        def test_fast(i):
            pass
        """
    )
    pytester.runpytest("--cleanroom-shard-durations=d.json").assert_outcomes(passed=12)
    recorded = json.loads((pytester.path / "d.json").read_text())
    assert len(recorded) == 12
    assert all(
        recorded[n] > recorded[m] for n in recorded if "slow" in n for m in recorded if "fast" in m
    )
    first = pytester.runpytest("--cleanroom-shard=1/2", "--cleanroom-shard-durations=d.json")
    first.assert_outcomes(passed=2, deselected=10)  # two slow tests make half of the time


def test_xdist_workers_hand_the_split_to_the_controller(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SUITE)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--cleanroom-shard=1/2", "--cleanroom-shard-run=r", "--cleanroom-attest=out"
    )
    result.assert_outcomes(passed=3)
    configuration = statement_of(pytester.path / "out" / "run.intoto.json")["predicate"][
        "configuration"
    ]
    record = next(c["annotations"] for c in configuration if c["name"] == "cleanroom-shard")
    assert (record["index"], record["total"], record["run"]) == (1, 2, "r")
    assert len(record["selectedTests"]) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cleanroom-shard=4/3"], "--cleanroom-shard: '4/3': shard 4 is not between 1 and 3"),
        (["--cleanroom-shard=auto"], "--cleanroom-shard: auto found no shard variables"),
        (["--cleanroom-shard=1/2", "--cleanroom-shard-durations=bad.json"], "not JSON"),
    ],
)
def test_bad_input_is_one_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    for name in ("JOB_COMPLETION_INDEX", "CI_NODE_INDEX", "CI_NODE_TOTAL"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(SUITE)
    (pytester.path / "bad.json").write_text("{not json")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
