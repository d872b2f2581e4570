"""``[validation.ENV]`` in make.toml: every mistake is one error naming the line and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from ggen_lifecycle.errors import ConfigError
from ggen_lifecycle.production.gate import gated_phases
from ggen_lifecycle.production.inputs import Inputs, collect
from ggen_lifecycle.production.steps import plan_steps, verified_requirements
from tests.unit.lifecycle.helpers import project_from

PHASES = """
[lifecycle.build]
command = "make"
outputs = ["dist/**"]
[lifecycle.test]
command = "make check"
[lifecycle.deploy]
command = "echo deploy"
"""


def load(tmp_path: Path, table: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        project_from(tmp_path, PHASES + table)
    return caught.value


def test_defaults_come_from_the_declared_phases(tmp_path: Path) -> None:
    project = project_from(tmp_path, PHASES + "[validation.production]\n")
    spec = project.spec.validation["production"]
    assert [s.name for s in plan_steps(project, spec, "production")] == ["build", "test"]
    assert verified_requirements(project, spec) == {"tests": "test"}
    assert spec.gate == ["deploy"]
    assert spec.policy == "strict"
    assert "production" in project.environments()


def test_an_unknown_step_suggests_the_phase(tmp_path: Path) -> None:
    error = load(tmp_path, '[validation.production]\nsteps = ["biuld"]\n')
    assert error.line == 9
    assert "unknown step 'biuld'; did you mean 'build'?" in str(error)


def test_a_misspelt_key_suggests_the_key(tmp_path: Path) -> None:
    error = load(tmp_path, '[validation.production]\ntrusted_key = ["k.pub"]\n')
    assert "unknown key 'trusted_key' in [validation.production]; did you mean 'trusted_keys'?" in (
        str(error)
    )


def test_a_policy_weaker_than_strict_is_refused(tmp_path: Path) -> None:
    error = load(tmp_path, '[validation.production]\npolicy = { network = "host" }\n')
    assert "network = 'host'" in str(error)
    assert "weaker than 'strict'" in str(error)
    assert error.line == 9


def test_resource_limits_may_be_raised(tmp_path: Path) -> None:
    project = project_from(
        tmp_path,
        PHASES + "[validation.production]\npolicy = { memory_limit = 8589934592, timeout = 900 }\n",
    )
    assert project.spec.validation["production"].policy == {
        "memory_limit": 8589934592,
        "timeout": 900,
    }


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    error = load(
        tmp_path,
        """[validation.production]
steps = ["build", "test", "build"]
gate = ["deplyo"]
verifies = { security-review = "audit" }
[validation.production.commands]
test = "pytest"
""",
    )
    text = str(error)
    assert "4 problems" in text
    assert "'test' is a phase already" in text
    assert "steps lists 'build' twice" in text
    assert "unknown phase 'deplyo'; did you mean 'deploy'?" in text
    assert "verifies.security-review: 'audit' is not one of the steps" in text


def test_no_steps_at_all_says_how_to_list_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"has no steps: .*steps = \[\"build\", \"test\"\]"):
        project_from(tmp_path, '[lifecycle.fmt]\ncommand = "x"\n[validation.production]\n')


def test_an_empty_command_is_refused(tmp_path: Path) -> None:
    error = load(tmp_path, '[validation.production]\n[validation.production.commands]\na = ""\n')
    assert "step 'a' needs at least one non-empty command" in str(error)


def test_steps_run_in_each_workspace_of_a_phase(tmp_path: Path) -> None:
    project = project_from(
        tmp_path,
        """
[lifecycle.build]
command = "make"
cwd = "src"
[lifecycle.test]
command = "make check"
workspaces = []
[validation.production]
steps = ["build", "test"]
[env.production]
MODE = "release"
""",
        {"lib/src/x": "", "app/src/y": ""},
        workspaces={"lib": [], "app": ["lib"]},
    )
    spec = project.spec.validation["production"]
    planned = plan_steps(project, spec, "production")
    assert [(s.label, s.cwd) for s in planned] == [
        ("lib:build", "lib/src"),
        ("app:build", "app/src"),
        ("test", "."),
    ]
    assert planned[0].env["MODE"] == "release"
    assert planned[0].env["GGEN_ENV"] == "production"


def test_the_gate_sees_deploy_reached_through_dependencies_and_hooks(tmp_path: Path) -> None:
    project = project_from(
        tmp_path,
        PHASES
        + """
[lifecycle.release]
command = "echo release"
post = ["deploy"]
[lifecycle.ship]
depends_on = ["deploy"]
[validation.production]
""",
    )
    assert gated_phases(project, ["build"], "production", None) == []
    assert gated_phases(project, ["release"], "production", None) == ["deploy"]
    assert gated_phases(project, ["ship"], "production", None) == ["deploy"]
    assert gated_phases(project, ["deploy"], "staging", None) == []  # no [validation.staging]


def test_the_inputs_leave_out_every_declared_output(tmp_path: Path) -> None:
    project = project_from(
        tmp_path,
        PHASES + '[validation.production]\ninputs = ["**", "!docs/**"]\n',
        {"src/a.py": "a", "dist/a.py": "built", "docs/x.md": "doc", ".git/HEAD": "x"},
    )
    found = collect(project, project.spec.validation["production"])
    assert sorted(found.digests) == ["make.toml", "src/a.py"]
    changed = Inputs({**found.digests, "src/a.py": "0" * 64, "new": "1" * 64})
    assert changed.changes_from(found.digests) == ["changed src/a.py", "added new"]
    assert changed.digest != found.digest
