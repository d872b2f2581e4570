"""``ggen test list`` and ``ggen test run``: real installs, the real ``ggen`` process and pytest."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import SMOKE, SMOKE_NODE, ggen, write_test_gpack

pytestmark = pytest.mark.integration

TWO = {
    "good.scenario.toml": """\
        [scenario]
        name = "good"
        [[steps]]
        name = "ok"
        run = "true"
        """,
    "bad.scenario.yaml": """\
        scenario:
          name: bad
        steps:
          - name: fails
            run: "exit 4"
        """,
}


@pytest.fixture
def two_scenarios(tmp_path: Path, install_packs: Callable[..., None], env_home: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    pack = write_test_gpack(tmp_path / "src", "io.test.two", scenarios=TWO)
    (pack / "gpack.toml").write_text(
        (pack / "gpack.toml")
        .read_text()
        .replace(
            'patterns = ["scenarios/*.scenario.toml"]',
            'patterns = ["scenarios/*.scenario.toml", "scenarios/*.scenario.yaml"]',
        )
    )
    install_packs(project, pack)
    (project / "test_own.py").write_text("def test_own():\n    assert False\n")
    return project


@pytest.fixture
def env_home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def test_list_shows_packs_floors_and_scenarios(smoke_install: Path, tmp_path: Path) -> None:
    done = ggen("test", "list", "--json", cwd=smoke_install, home=tmp_path)
    assert done.returncode == 0, done.stderr
    [pack] = json.loads(done.stdout)["packs"]
    assert (pack["id"], pack["floor"]) == (SMOKE, "strict")
    assert [s["ref"] for s in pack["scenarios"]] == [f"{SMOKE}:python-toolchain"]
    assert pack["fixtures"] == ["fixtures/smoke_fixtures.py"]
    human = ggen("test", "list", cwd=smoke_install, home=tmp_path)
    assert f"{SMOKE}:python-toolchain" in human.stdout


def test_run_a_pack_with_pytest_options(smoke_install: Path, tmp_path: Path) -> None:
    done = ggen("test", "run", SMOKE, "-v", "-p", "no:cacheprovider", cwd=smoke_install,
                home=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{SMOKE_NODE}/scenarios/python-toolchain.scenario.toml::python-toolchain PASSED" in (
        done.stdout
    )
    assert "under policy strict" in done.stdout  # the pack's floor


def test_run_one_scenario_exits_with_pytest_status(two_scenarios: Path, tmp_path: Path) -> None:
    good = ggen("test", "run", "io.test.two:good", "-p", "no:cacheprovider", cwd=two_scenarios,
                home=tmp_path)  # fmt: skip
    assert good.returncode == 0, good.stdout + good.stderr
    assert "1 passed, 1 deselected" in good.stdout  # the project's own test is not collected
    bad = ggen("test", "run", "--json", "io.test.two:bad", "-p", "no:cacheprovider",
               cwd=two_scenarios, home=tmp_path)  # fmt: skip
    assert bad.returncode == 1
    report = json.loads(bad.stdout)  # pytest's own lines went to stderr
    assert (report["ok"], report["exit_code"], report["scenario"]) == (False, 1, "bad")
    assert [i["outcome"] for i in report["items"]] == ["failed"]
    assert report["items"][0]["nodeid"].endswith("bad.scenario.yaml::bad")
    assert "1 failed" in bad.stderr
    both = ggen("test", "run", "io.test.two", "-p", "no:cacheprovider", cwd=two_scenarios,
                home=tmp_path)  # fmt: skip
    assert both.returncode == 1
    assert "1 failed, 1 passed" in both.stdout
    assert not [p for p in (two_scenarios / ".ggen").iterdir() if p.name.startswith("test-run-")]


def test_unknown_pack_or_scenario_is_a_clear_error(two_scenarios: Path, tmp_path: Path) -> None:
    pack = ggen("test", "run", "io.test.tow", cwd=two_scenarios, home=tmp_path)
    assert pack.returncode == 2
    assert "io.test.tow: not a test gpack installed" in pack.stderr
    assert "did you mean 'io.test.two'?" in pack.stderr
    scenario = ggen("test", "run", "io.test.two:goood", cwd=two_scenarios, home=tmp_path)
    assert scenario.returncode == 2
    assert "no scenario 'goood' (did you mean 'good'?)" in scenario.stderr


def test_outside_a_project_nothing_is_offered(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    listed = ggen("test", "list", cwd=empty, home=tmp_path)
    assert listed.returncode == 0
    assert "no test gpacks installed" in listed.stdout
    run = ggen("test", "run", SMOKE, cwd=empty, home=tmp_path)
    assert run.returncode == 2
    assert "not a test gpack installed" in run.stderr


def test_the_docs_console_example_runs_as_written(smoke_install: Path, tmp_path: Path) -> None:
    """docs/gpack-bundles.md's `ggen test` console block: each command as written, in a project
    where the smoke pack is installed, and the printed `ggen test list` output is what it says."""
    import re
    import shlex
    import shutil

    doc = (Path(__file__).resolve().parents[3] / "docs" / "gpack-bundles.md").read_text()
    section = doc[doc.index("## Without a test file: `ggen test`") :]
    block = re.search(r"```console\n(.*?)```", section, re.DOTALL)
    assert block is not None
    project = tmp_path / "project"
    shutil.copytree(smoke_install, project)
    commands = [line for line in block.group(1).splitlines() if line.startswith("$ ")]
    assert len(commands) == 4
    printed = block.group(1).split("$ ")[1].splitlines()[1:]  # what `ggen test list` prints
    for line in commands:
        argv = shlex.split(line[2:], comments=True)
        assert argv[:2] == ["ggen", "test"]
        done = ggen(*argv[1:], cwd=project, home=tmp_path)
        assert done.returncode == 0, f"{line}\n{done.stdout}{done.stderr}"
        if argv == ["ggen", "test", "list"]:
            assert [" ".join(row.split()) for row in done.stdout.splitlines()] == [
                " ".join(row.split()) for row in printed
            ]
    assert (project / "smoke.xml").is_file()  # --junitxml=smoke.xml as written
