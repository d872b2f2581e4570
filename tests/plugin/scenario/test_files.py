"""``*.scenario.toml`` files collected as tests: items, ids, selection, errors, xdist."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

BUILD = """\
[scenario]
name = "build"
markers = ["slow"]

[matrix]
mode = ["debug", "release"]

[[steps]]
name = "compile"
run = "mkdir -p out && echo ${matrix.mode} > out/app"
expect_files = ["out/app"]

[[steps]]
name = "check"
run = ["cat", "out/app"]
expect_stdout = "^${matrix.mode}$"
"""

FAILING = """\
[scenario]
name = "broken"

[[steps]]
name = "prepare"
run = "echo preparing > state.txt"

[[steps]]
name = "migrate"
run = "echo 'relation \\"users\\" does not exist' >&2; exit 3"

[[steps]]
name = "never"
run = "true"

[[rollback]]
name = "restore"
run = "rm state.txt && echo restored"
"""

INI = "[pytest]\nmarkers =\n    slow: slow scenarios\n"


def test_one_item_per_matrix_row_with_readable_ids(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.path.joinpath("build.scenario.toml").write_text(BUILD)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "build.scenario.toml::build[[]mode=debug[]] PASSED*",
            "build.scenario.toml::build[[]mode=release[]] PASSED*",
        ]
    )


def test_a_failing_step_shows_command_exit_code_and_tails(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("broken.scenario.toml").write_text(FAILING)
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*scenario 'broken' (*broken.scenario.toml:1) failed",
            "step 'migrate' failed: expected exit code 0, got 3",
            "command: /bin/sh -c *",
            "exit code 3 after *",
            "*--- stderr (last 20 lines) ---",
            'relation "users" does not exist',
            "*passed  rollback restore*",
        ]
    )
    assert "skipped never" in result.stdout.str()
    # The failure is the scenario's report, not a Python traceback of the plugin.
    assert "def run_scenario_file" not in result.stdout.str()


def test_items_are_selected_by_keyword_and_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.path.joinpath("build.scenario.toml").write_text(BUILD)
    pytester.path.joinpath("other.scenario.toml").write_text(
        "[[steps]]\nname = 'a'\nrun = 'true'\n"
    )
    pytester.makepyfile("def test_plain():\n    pass\n")

    def selected(*args: str) -> set[str]:
        result = pytester.runpytest("--collect-only", "-q", *args)
        return {line for line in result.outlines if "::" in line}

    assert selected("-k", "release") == {"build.scenario.toml::build[mode=release]"}
    assert selected("-m", "slow") == {
        "build.scenario.toml::build[mode=debug]",
        "build.scenario.toml::build[mode=release]",
    }
    assert selected("-m", "scenario") == selected("-k", "scenario") - {
        "test_items_are_selected_by_keyword_and_marker.py::test_plain"
    }
    assert selected("-m", "scenario and not slow") == {"other.scenario.toml::other"}
    assert selected("-k", "other") == {"other.scenario.toml::other"}


def test_a_malformed_file_names_its_line_and_others_are_still_collected(
    pytester: pytest.Pytester,
) -> None:
    pytester.path.joinpath("good.scenario.toml").write_text("[[steps]]\nname='a'\nrun='true'\n")
    pytester.path.joinpath("typo.scenario.toml").write_text(
        "[scenario]\nname = 'typo'\n\n[[steps]]\nname = 'a'\nrun = 'true'\nexpect_exits = 0\n"
    )
    pytester.path.joinpath("syntax.scenario.toml").write_text("[[steps]]\nname = 'a\n")
    result = pytester.runpytest("--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines_random(
        [
            "*typo.scenario.toml:7: unknown key 'steps[[]0[]].expect_exits'; did you mean "
            "'expect_exit'?",
            "*syntax.scenario.toml:2: invalid TOML: *",
        ]
    )
    # Without the flag pytest stops before running anything, as for a broken Python file.
    stopped = pytester.runpytest()
    stopped.stdout.fnmatch_lines(["*Interrupted: 2 errors during collection*"])


def test_scenario_files_run_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.path.joinpath("build.scenario.toml").write_text(BUILD)
    pytester.path.joinpath("broken.scenario.toml").write_text(FAILING)
    result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*step 'migrate' failed: expected exit code 0, got 3*"])


def test_collection_can_be_turned_off(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ncleanroom_scenario_files = false\n")
    pytester.path.joinpath("build.scenario.toml").write_text("not toml at all [")
    pytester.runpytest().assert_outcomes()


def test_scenario_policy_tightens_the_run_policy(pytester: pytest.Pytester) -> None:
    pytester.path.joinpath("strict.scenario.toml").write_text(
        "[scenario]\npolicy = 'strict'\n\n[[steps]]\nname = 'env'\nrun = 'true'\n"
    )
    pytester.makeconftest(
        """
        def pytest_cleanroom_result(item, result):
            print("POLICY", result.policy_name)
        """
    )
    result = pytester.runpytest("-s", "--cleanroom-policy=standard")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*POLICY *strict"])


def test_an_unregistered_marker_under_strict_markers_names_the_line(
    pytester: pytest.Pytester,
) -> None:
    pytester.path.joinpath("n.scenario.toml").write_text(
        "[scenario]\nname = 'n'\nmarkers = ['nightly']\n\n[[steps]]\nname = 'a'\nrun = 'true'\n"
    )
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*n.scenario.toml:3: 'nightly' not found in `markers`*"])


def test_yaml_scenario_files_are_collected_and_run_alike(pytester: pytest.Pytester) -> None:
    import tomllib
    import yaml

    pytester.makeini(INI)
    data = tomllib.loads(BUILD)
    pytester.path.joinpath("build.scenario.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["build.scenario.yaml::build[[]mode=debug[]] PASSED*"])
