"""`ggen market add` a test gpack, run pytest: its scenarios and fixtures are part of the run."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import PROJECT_TEST, SMOKE, SMOKE_ITEM, SMOKE_NODE, ggen_ok, write_test_gpack

pytestmark = pytest.mark.integration


def test_added_pack_runs_its_scenarios_and_lends_its_fixtures(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    project = pytester.path
    added = ggen_ok("market", "add", SMOKE, cwd=project, home=tmp_path)
    assert f"+ {SMOKE}@0.1.0" in added
    pytester.makepyfile(test_project=PROJECT_TEST)

    result = pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines_random(
        [
            f"{SMOKE_ITEM} PASSED*",
            "test_project.py::test_uses_the_pack_fixture PASSED*",
            f"cleanroom gpack: {SMOKE}@0.1.0 (1 scenario file(s), 1 fixture module(s), "
            f"floor strict) from {project / 'ggen.lock'}",
        ]
    )
    # The pack's three steps really ran in a cleanroom, under the pack's node id.
    summary = result.stdout.str()
    assert summary.count(f"exit 0  {SMOKE_ITEM}") == 3
    # Running the pack's modules wrote nothing into the installed tree: it still verifies.
    verified = json.loads(ggen_ok("market", "verify", "--json", cwd=project, home=tmp_path))
    assert [(r["id"], r["status"]) for r in verified["packages"]] == [(SMOKE, "ok")]


def test_marker_and_keyword_select_the_pack(pytester: pytest.Pytester, smoke_project: Path) -> None:
    pytester.makepyfile(test_project=PROJECT_TEST)

    def collected(*args: str) -> list[str]:
        result = pytester.runpytest("--co", "-q", "--strict-markers", *args)
        assert result.ret in (0, pytest.ExitCode.NO_TESTS_COLLECTED), result.stdout.str()
        return [line for line in result.outlines if "::" in line]

    project_item = "test_project.py::test_uses_the_pack_fixture"
    assert collected() == [project_item, SMOKE_ITEM]
    assert collected("-m", "gpack") == [SMOKE_ITEM]
    assert collected("-m", f"gpack(id='{SMOKE}')") == [SMOKE_ITEM]
    assert collected("-m", "gpack(id='io.other.pack')") == []
    assert collected("-m", "not gpack") == [project_item]
    assert collected("-k", SMOKE) == [SMOKE_ITEM]
    assert collected("-k", "python-toolchain") == [SMOKE_ITEM]
    assert collected("-k", f"not {SMOKE}") == [project_item]
    assert collected("--deselect", SMOKE_ITEM) == [project_item]


def test_paths_on_the_command_line(pytester: pytest.Pytester, smoke_project: Path) -> None:
    pytester.makepyfile(test_project=PROJECT_TEST)

    # A path narrows the run: the pack's fixtures stay usable, its scenarios are left out...
    narrowed = pytester.runpytest("test_project.py")
    narrowed.assert_outcomes(passed=1)
    narrowed.stdout.fnmatch_lines(
        ["*not collected (paths given; --cleanroom-gpacks collects them)*"]
    )
    # ...unless asked for, or the path is the project itself.
    forced = pytester.runpytest("test_project.py", "--cleanroom-gpacks", "--co", "-q")
    forced.stdout.fnmatch_lines([SMOKE_ITEM])
    whole = pytester.runpytest(".", "--co", "-q")
    whole.stdout.fnmatch_lines([SMOKE_ITEM])
    # A custom norecursedirs does not make the walk enter the installed pack: one item, not two.
    walked = pytester.runpytest(".", "--co", "-q", "-o", "norecursedirs=build")
    assert [line for line in walked.outlines if "::" in line] == [
        "test_project.py::test_uses_the_pack_fixture",
        SMOKE_ITEM,
    ]


@pytest.mark.parametrize(
    "where",
    [".ggen", ".ggen/packages", f".ggen/packages/{SMOKE}", f".ggen/packages/{SMOKE}/0.1.0",
     f".ggen/packages/{SMOKE}/0.1.0/scenarios/python-toolchain.scenario.toml::python-toolchain"],
)  # fmt: skip
def test_a_path_into_the_installed_pack_is_refused(
    pytester: pytest.Pytester, smoke_project: Path, where: str
) -> None:
    # Collected by path, its files would run as plain scenario files, without the pack's floor.
    refused = pytester.runpytest(where)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    path = smoke_project / where.split("::")[0]
    refused.stderr.fnmatch_lines(
        [f"ERROR: cleanroom gpacks: {path} is part of, or contains, the installed test gpack "
         f"{SMOKE}@0.1.0; select its scenarios with -m \"gpack(id='{SMOKE}')\" or -k {SMOKE} "
         "instead of a path"]
    )  # fmt: skip


@pytest.mark.parametrize("how", ["option", "ini"])
def test_turned_off(pytester: pytest.Pytester, smoke_project: Path, how: str) -> None:
    pytester.makepyfile(test_project=PROJECT_TEST)
    args = ["--no-cleanroom-gpacks"] if how == "option" else []
    if how == "ini":
        pytester.makeini("[pytest]\ncleanroom_gpacks = false\n")
    result = pytester.runpytest("-q", *args)
    # Neither the scenarios nor the fixtures: the project's test cannot find smoke_greeting.
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'smoke_greeting' not found*"])
    assert SMOKE_NODE not in result.stdout.str()
    if how == "ini":  # the option turns it back on
        pytester.runpytest("-q", "--cleanroom-gpacks").assert_outcomes(passed=2)


def test_project_directory_from_the_ini(pytester: pytest.Pytester, smoke_install: Path) -> None:
    deps = pytester.path / "deps"
    deps.mkdir()
    shutil.copy2(smoke_install / "ggen.lock", deps / "ggen.lock")
    shutil.copytree(smoke_install / ".ggen", deps / ".ggen")
    pytester.makepyfile(test_project=PROJECT_TEST)
    # No ggen.lock at the rootdir: inert.
    pytester.runpytest("-q").assert_outcomes(errors=1)
    pytester.makeini("[pytest]\ncleanroom_gpack_project = deps\n")
    result = pytester.runpytest("-q")
    result.assert_outcomes(passed=2)
    # The option wins over the ini key (relative to the invocation directory).
    elsewhere = pytester.runpytest("-q", "--cleanroom-gpack-project", "nowhere")
    elsewhere.assert_outcomes(errors=1)


def test_under_xdist(pytester: pytest.Pytester, smoke_project: Path) -> None:
    pytester.makepyfile(test_project=PROJECT_TEST)
    pytester.makepyfile(
        test_more="""
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_fixture_on_every_worker(smoke_greeting, n):
            assert smoke_greeting == "cleanroom"
        """
    )
    result = pytester.runpytest_subprocess("-n", "2", "-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    result.stdout.re_match_lines([rf"\[gw[01]\] .*PASSED {SMOKE_ITEM.replace('.', '[.]')}"])
    assert {line[:5] for line in result.outlines if "PASSED" in line} == {"[gw0]", "[gw1]"}


def test_last_failed_reruns_a_failed_pack_scenario(
    pytester: pytest.Pytester, tmp_path: Path, install_packs: Callable[..., None]
) -> None:
    pack = write_test_gpack(
        tmp_path / "src",
        "io.example.flaky",
        scenarios={
            "gate.scenario.toml": """\
            [scenario]
            name = "gate"

            [[steps]]
            name = "needs the marker file"
            run = ["test", "-e", "/workspace/../marker-not-here"]
            """
        },
    )
    install_packs(pytester.path, pack)
    pytester.makepyfile(test_a="def test_fails():\n    assert False\n\ndef test_passes(): pass\n")
    first = pytester.runpytest("-q")
    first.assert_outcomes(passed=1, failed=2)
    again = pytester.runpytest("--lf", "-v")
    again.assert_outcomes(failed=2)
    assert "test_passes" not in again.stdout.str()
    again.stdout.fnmatch_lines_random(
        [
            "gpack:io.example.flaky@1.0.0/scenarios/gate.scenario.toml::gate FAILED*",
            "test_a.py::test_fails FAILED*",
        ]
    )
