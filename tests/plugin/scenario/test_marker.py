"""``@pytest.mark.scenario`` and the ``scenario_result`` fixture, driven through pytester."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

FILE = """\
[scenario]
name = "from-file"

[[steps]]
name = "hello"
run = "echo from file > f.txt"
expect_files = ["f.txt"]
"""


def test_marker_runs_the_scenario_before_the_body(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_cleanroom import scenario

        SC = scenario("greet").step("write", "echo hi > g.txt").step("read", ["cat", "g.txt"])

        @pytest.mark.scenario(SC)
        def test_it(scenario_result, workspace):
            assert scenario_result.ok
            assert scenario_result.step("read").stdout == "hi\\n"
            assert workspace.read("g.txt") == "hi\\n"
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_failing_step_fails_a_test_whose_body_asserts_nothing(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_cleanroom import scenario

        SC = (
            scenario("deploy")
            .step("build", "echo building")
            .step("push", "echo 'push: permission denied' >&2; exit 13")
            .step("announce", "echo never")
        )

        @pytest.mark.scenario(SC)
        def test_without_asking():
            pass

        @pytest.mark.scenario(SC)
        def test_asking(scenario_result):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    # Each test's own failure section carries the scenario's failure (the short summary may
    # repeat it, depending on the terminal's width).
    result.stdout.fnmatch_lines(
        [
            "*_ test_without_asking _*",
            "*scenario 'deploy' failed*",
            "*_ test_asking _*",
            "*scenario 'deploy' failed*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*step 'push' failed: expected exit code 0, got 13",
            "command: /bin/sh -c *push: permission denied*exit 13*",
            "exit code 13 after *",
            "*--- stderr (last 20 lines) ---",
            "push: permission denied",
        ]
    )
    assert "skipped announce" in out


def test_check_false_lets_the_body_inspect_a_failure(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_cleanroom import scenario

        @pytest.mark.scenario(scenario("s").step("bad", "exit 2"), check=False)
        def test_expected_failure(scenario_result):
            assert scenario_result.failed_step.name == "bad"
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_marker_with_a_file_path_relative_to_the_test(pytester: pytest.Pytester) -> None:
    pytester.mkdir("scenarios")
    pytester.path.joinpath("scenarios", "hello.scenario.toml").write_text(FILE)
    pytester.makeini("[pytest]\ncleanroom_scenario_files = false\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.scenario("scenarios/hello.scenario.toml")
        def test_file(scenario_result, workspace):
            assert scenario_result.name == "from-file"
            assert workspace.read("f.txt") == "from file\\n"
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_marker_picks_a_matrix_row(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncleanroom_scenario_files = false\n")
    pytester.path.joinpath("m.scenario.toml").write_text(
        "[matrix]\nmode = ['a', 'b']\n[[steps]]\nname = 'x'\nrun = 'echo ${matrix.mode}'\n"
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.scenario("m.scenario.toml", matrix={"mode": "b"})
        def test_row(scenario_result):
            assert scenario_result.step("x").stdout == "b\\n"

        @pytest.mark.scenario("m.scenario.toml")
        def test_ambiguous(scenario_result):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*m.scenario.toml has 2 matrix rows; pick one*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('"nowhere.scenario.toml"', "*scenario file 'nowhere.scenario.toml' not found*"),
        ("42", "*takes a Scenario or the path of a *.scenario.toml file, not int*"),
        ("", "*use @pytest.mark.scenario(scenario_or_path, matrix=None, check=True)*"),
    ],
)
def test_bad_marker_arguments_are_explained(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.scenario({marker})
        def test_bad(scenario_result):
            pass
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([message])


def test_fixture_without_marker_is_explained(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_x(scenario_result):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*scenario_result fixture needs @pytest.mark.scenario*"])


def test_the_marker_scenario_shares_the_tests_cleanroom(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_cleanroom import scenario

        @pytest.mark.scenario(scenario("s").step("a", "echo one > one.txt"))
        def test_shared(cleanroom, scenario_result):
            cleanroom.run(["cat", "one.txt"]).assert_success().assert_stdout_contains("one")
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_long_scenario_budget_asks_for_no_more_than_the_policy_allows(
    pytester: pytest.Pytester,
) -> None:
    # The budget (1000 s) exceeds --cleanroom-timeout (30 s): the steps simply keep the
    # policy's limit, and no "weaker policy" warning is raised for it.
    pytester.makepyfile(
        """
        import pytest
        from pytest_cleanroom import scenario

        @pytest.mark.scenario(scenario("long").step("a", "true").step("b", "true").timeout(1000))
        def test_long(scenario_result):
            assert scenario_result.ok
        """
    )
    result = pytester.runpytest("--cleanroom-timeout=30")
    result.assert_outcomes(passed=1, warnings=0)


def test_a_step_timeout_above_the_policy_is_refused_with_a_warning(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_cleanroom import scenario

        @pytest.mark.scenario(scenario("s").step("a", "true", timeout=1000))
        def test_step(scenario_result):
            assert scenario_result.ok
        """
    )
    result = pytester.runpytest("--cleanroom-timeout=30")
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*CleanroomPolicyWarning*timeout*"])
