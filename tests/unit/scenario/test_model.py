"""The scenario builder: immutability, validation and the plan of stages."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pytest_cleanroom.scenarios import Scenario, ScenarioError, Step, scenario, step


def test_builder_is_immutable_so_a_base_can_be_extended_twice() -> None:
    base = scenario("base").step("init", ["git", "init"])
    a = base.step("a", "echo a")
    b = base.step("b", "echo b")
    assert [s.name for s in base.steps] == ["init"]
    assert [s.name for s in a.steps] == ["init", "a"]
    assert [s.name for s in b.steps] == ["init", "b"]


def test_the_example_from_the_issue_builds_the_expected_plan() -> None:
    sc = (
        scenario("complete_lifecycle")
        .step("init", ["git", "init", "-q"])
        .step("build", "make build", expect_exit=0, expect_stdout=r"built \d+")
        .step("lint", "make lint")
        .step("typecheck", "make typecheck")
        .concurrent("lint", "typecheck")
        .with_rollback("clean", ["make", "clean"])
        .timeout(60)
    )
    plan = sc.plan()
    assert [[s.name for s in stage] for stage in plan] == [
        ["init"],
        ["build"],
        ["lint", "typecheck"],
    ]
    assert sc.scenario_timeout == 60
    assert [s.name for s in sc.rollback_steps] == ["clean"]
    assert sc.steps[0].run == ("git", "init", "-q")
    assert sc.steps[1].run == "make build"


def test_a_group_named_before_its_steps_runs_where_it_was_declared() -> None:
    sc = (
        scenario("s")
        .step("first", "true")
        .concurrent("x", "y")
        .step("middle", "true")
        .step("x", "true")
        .step("y", "true")
    )
    assert [[s.name for s in st] for st in sc.plan()] == [["first"], ["x", "y"], ["middle"]]


def test_concurrent_accepts_new_step_objects() -> None:
    sc = scenario("s").concurrent(step("lint", "ruff ."), step("types", ["mypy", "."]))
    (stage,) = sc.plan()
    assert [s.name for s in stage] == ["lint", "types"]
    assert stage[1].run == ("mypy", ".")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: scenario("s").step("a", "x").step("a", "y"), "two steps are named 'a'"),
        (lambda: scenario("s").step("a", "x").concurrent("a", "zz").plan(), "unknown step 'zz'"),
        (lambda: scenario("s").step("a", "x").concurrent("a"), "at least two"),
        (
            lambda: (
                scenario("s")
                .step("a", "x")
                .step("b", "x")
                .concurrent("a", "b")
                .concurrent("b", "a")
                .plan()
            ),
            "two concurrent groups",
        ),
        (lambda: scenario("s").step("a", "x", expect_stdout="("), "expect_stdout is not a valid"),
        (lambda: scenario("s").step("a", ""), "empty command"),
        (lambda: scenario("s").step("a", []), "non-empty list"),
        (lambda: scenario("s").step("", "x"), "non-empty name"),
        (lambda: scenario(""), "non-empty name"),
        (lambda: scenario("s").timeout(0), "timeout must be positive"),
        (lambda: scenario("s").step("a", "x", timeout=-1), "timeout must be positive"),
        (lambda: scenario("s").step("a", "x", no_such_option=1), "no_such_option"),
        (lambda: scenario("s").step("a"), "needs a command"),
        (
            lambda: scenario("s").with_rollback("r", "x").with_rollback("r", "y"),
            "two rollback steps",
        ),
    ],
)
def test_ill_formed_scenarios_are_refused_with_a_clear_message(
    build: Callable[[], object], message: str
) -> None:
    with pytest.raises(ScenarioError, match=message):
        build()


def test_step_and_scenario_options_are_kept() -> None:
    sc = (
        scenario("s")
        .step(
            "a",
            "cat",
            env={"A": "1"},
            cwd="sub",
            expect_exit=None,
            expect_stderr="warn",
            expect_files="out.txt",
            continue_on_failure=True,
            timeout=5,
            stdin="input",
        )
        .with_env(B="2")
        .with_policy("strict")
        .with_services("postgres", "redis", "postgres")
    )
    (only,) = sc.steps
    assert only == Step(
        "a",
        "cat",
        env={"A": "1"},
        cwd="sub",
        expect_exit=None,
        expect_stderr="warn",
        expect_files=("out.txt",),
        continue_on_failure=True,
        timeout=5,
        stdin="input",
    )
    assert sc.env == {"B": "2"}
    assert sc.policy == "strict"
    assert sc.services == ("postgres", "redis")
    assert isinstance(sc, Scenario)


def test_command_line_quotes_argument_lists() -> None:
    assert step("a", ["echo", "two words"]).command_line == "echo 'two words'"
    assert step("a", "echo $HOME").command_line == "echo $HOME"


def test_the_builder_imports_without_pytest() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pytest'] = None\n"
        "from pytest_cleanroom import scenario\n"
        "sc = scenario('x').step('a', 'true')\n"
        "print(sc.steps[0].name)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "a"


def test_repr_is_short() -> None:
    sc = scenario("x").step("a", "true").with_rollback("r", "true").timeout(5)
    assert repr(sc.with_services("redis")) == (
        "<Scenario 'x': 1 step, 1 rollback, timeout 5s, services redis>"
    )


def test_scenario_is_only_the_builder_function() -> None:
    """``pytest_cleanroom.scenario`` is the function, even once the package is imported; the
    package is ``pytest_cleanroom.scenarios``."""
    import subprocess
    import sys

    code = (
        "import importlib, inspect\n"
        "import pytest_cleanroom, pytest_cleanroom.scenarios.files\n"
        "from pytest_cleanroom import scenario\n"
        "from pytest_cleanroom.scenarios import scenario as builder\n"
        "assert scenario is builder and inspect.isfunction(scenario), scenario\n"
        "assert pytest_cleanroom.scenario is builder\n"
        "try:\n"
        "    importlib.import_module('pytest_cleanroom.scenario')\n"
        "except ModuleNotFoundError:\n"
        "    print('no module')\n"
        "print(scenario('x').step('a', 'true').name)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["no", "module", "x"]
