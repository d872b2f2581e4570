"""``--cleanroom-repeat-check`` and the ``cleanroom_repeat_check`` marker: every command runs a
second time with the same seed in a copy of the workspace, and differences fail the test."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

TESTS = """
import pytest
from pytest_cleanroom.scenarios import scenario, step

def test_deterministic(cleanroom, workspace):
    workspace.write("in.txt", "b\\na\\n")
    cleanroom.run("sort in.txt > sorted.txt; echo seed=$CLEANROOM_SEED").assert_success()
    assert workspace.read("sorted.txt") == "a\\nb\\n"

def test_random_output(cleanroom):
    cleanroom.run("echo stable; od -An -N8 -tx1 /dev/urandom")

def test_random_file(cleanroom):
    cleanroom.run("echo same; head -c 16 /dev/urandom | od -An -tx1 > noise.txt")

def test_time_of_day(cleanroom):
    cleanroom.run("date +%s%N")
"""


def test_a_nondeterministic_command_fails_with_the_first_differing_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("--cleanroom-repeat-check", "--cleanroom-seed=4242", "-v")
    result.assert_outcomes(passed=1, failed=3)
    out = result.stdout.str()
    assert "test_deterministic PASSED" in out
    result.stdout.fnmatch_lines(
        [
            "*RepeatCheckError: repeat check: command `echo stable; od -An -N8 -tx1 "
            "/dev/urandom` is not deterministic: run a second time with seed 4242 in a copy of "
            "the workspace as it was before, it wrote a different stdout: first difference at "
            "line 2:",
            "*  first:  ' *",
            "*  second: ' *",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*it left a different workspace: file 'noise.txt' differs (sha256 *...*"
            "first difference at line 1:"
        ]
    )


def test_without_the_option_nothing_is_repeated(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(TESTS)
    pytester.runpytest().assert_outcomes(passed=4)


def test_the_marker_turns_it_on_and_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.cleanroom_repeat_check
        def test_on(cleanroom):
            cleanroom.run("od -An -N8 -tx1 /dev/urandom")

        @pytest.mark.cleanroom_repeat_check(False)
        def test_off(cleanroom):
            cleanroom.run("od -An -N8 -tx1 /dev/urandom")
        """
    )
    pytester.runpytest().assert_outcomes(passed=1, failed=1)
    pytester.runpytest("--cleanroom-repeat-check").assert_outcomes(passed=1, failed=1)


def test_the_replay_starts_from_the_workspace_as_it_was_before(
    pytester: pytest.Pytester,
) -> None:
    # Appending is deterministic only if the second run starts from the same file: a replay in
    # the already-modified workspace would see two lines and differ.
    pytester.makepyfile(
        """
        def test_append(cleanroom, workspace):
            workspace.write("log.txt", "start\\n")
            cleanroom.run("echo more >> log.txt; wc -l < log.txt").assert_stdout_contains("2")
            cleanroom.run("echo again >> log.txt; cat log.txt")
            assert workspace.read("log.txt") == "start\\nmore\\nagain\\n"
        """
    )
    pytester.runpytest("--cleanroom-repeat-check").assert_outcomes(passed=1)


def test_the_replay_is_not_reported_as_a_command_of_the_test(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_cleanroom_result(item, result):
            print("REPORTED", result.command[-1])
        """
    )
    pytester.makepyfile(
        """
        def test_count(cleanroom, workspace):
            cleanroom.run("echo x >> count.txt")
            cleanroom.run("echo y >> count.txt")
            # Each command ran once here; its replay ran in a copy that is gone.
            assert workspace.read("count.txt") == "x\\ny\\n"
        """
    )
    result = pytester.runpytest("-s", "--cleanroom-repeat-check")
    result.assert_outcomes(passed=1)
    assert [line[line.index("REPORTED") :] for line in result.outlines if "REPORTED" in line] == [
        "REPORTED echo x >> count.txt",
        "REPORTED echo y >> count.txt",
    ]


def test_a_swallowed_repeat_error_still_fails_the_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_swallow(cleanroom):
            try:
                cleanroom.run("od -An -N8 -tx1 /dev/urandom")
            except AssertionError:
                pass
        """
    )
    result = pytester.runpytest("--cleanroom-repeat-check")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*repeat check: command `od -An -N8 -tx1 /dev/urandom`*"])


def test_scenarios_and_concurrent_groups_are_checked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_cleanroom.scenarios import scenario, step

        WAIT = (
            "touch {me}; i=0; while [ ! -e {other} ]; do i=$((i+1)); "
            "[ $i -gt 200 ] && exit 9; sleep 0.05; done; echo {me} done"
        )
        STABLE = (
            scenario("stable")
            .step("init", "echo 1 > n.txt")
            .concurrent(
                step("a", WAIT.format(me="a.m", other="b.m")),
                step("b", WAIT.format(me="b.m", other="a.m")),
            )
            .step("sum", "cat n.txt a.m b.m | wc -l")
        )
        NOISY = scenario("noisy").step("init", "true").step("roll", "od -An -N4 -tx1 /dev/urandom")

        @pytest.mark.scenario(STABLE)
        def test_stable(scenario_result):
            assert scenario_result.ok

        @pytest.mark.scenario(NOISY)
        def test_noisy(scenario_result):
            pass
        """
    )
    result = pytester.runpytest("--cleanroom-repeat-check", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*repeat check: command `od -An -N4 -tx1 /dev/urandom` is not deterministic*"]
    )


def test_ini_key_turns_it_on(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncleanroom_repeat_check = true\n")
    pytester.makepyfile(
        "def test_r(cleanroom):\n    cleanroom.run('od -An -N8 -tx1 /dev/urandom')\n"
    )
    pytester.runpytest().assert_outcomes(failed=1)


def test_scenario_files_are_checked_and_explained(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("noisy.scenario.toml").write_text(
        "[[steps]]\nname = 'stable'\nrun = 'echo same > same.txt'\n\n"
        "[[steps]]\nname = 'noise'\nrun = 'od -An -N4 -tx1 /dev/urandom > noise.txt'\n"
    )
    result = pytester.runpytest("--cleanroom-repeat-check")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "repeat check: command `od -An -N4 -tx1 /dev/urandom > noise.txt` is not "
            "deterministic: * it left a different workspace: file 'noise.txt' differs *"
        ]
    )
    assert "def run_scenario_file" not in result.stdout.str()
