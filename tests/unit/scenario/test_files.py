"""Scenario files: the schema, matrix expansion, and errors that point to the file's line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom.policy import Policy
from pytest_cleanroom.scenarios.files import ScenarioFileError, load_scenario_file

FULL = """\
[scenario]
name = "release"
description = "build and check"
policy = "strict"
timeout = 60
rollback_timeout = 10
services = ["postgres", "redis"]
markers = ["slow"]
env = { MODE = "${matrix.mode}" }

[matrix]
mode = ["debug", "release"]
jobs = [1, 2]

[[steps]]
name = "build"
run = "make MODE=${matrix.mode} -j${matrix.jobs}"
env = { CC = "gcc" }
cwd = "src"
expect_exit = 0
expect_stdout = "built"
expect_stderr = "^$"
expect_files = ["out/${matrix.mode}/app"]
timeout = 30

[[steps]]
name = "lint"
run = ["make", "lint"]
group = "checks"
continue_on_failure = true

[[steps]]
name = "types"
run = ["make", "types"]
group = "checks"
expect_exit = 2

[[rollback]]
name = "clean"
run = "make clean"
"""


def write(tmp_path: Path, text: str, name: str = "x.scenario.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_documented_key_is_read(tmp_path: Path) -> None:
    variants = load_scenario_file(write(tmp_path, FULL))
    assert [v.id for v in variants] == [
        "release[mode=debug-jobs=1]",
        "release[mode=debug-jobs=2]",
        "release[mode=release-jobs=1]",
        "release[mode=release-jobs=2]",
    ]
    first = variants[0]
    sc = first.scenario
    assert first.markers == ("slow",)
    assert first.description == "build and check"
    assert first.params == {"mode": "debug", "jobs": 1}
    assert isinstance(sc.policy, Policy)
    assert sc.policy.name == "strict"
    assert (sc.scenario_timeout, sc.rollback_timeout) == (60.0, 10.0)
    assert sc.services == ("postgres", "redis")
    assert sc.env == {"MODE": "debug"}
    build = sc.steps[0]
    assert build.run == "make MODE=debug -j1"
    assert build.env == {"CC": "gcc"}
    assert build.cwd == "src"
    assert build.expect_stdout == "built"
    assert build.expect_stderr == "^$"
    assert build.expect_files == ("out/debug/app",)
    assert build.timeout == 30
    assert [[s.name for s in stage] for stage in sc.plan()] == [["build"], ["lint", "types"]]
    assert sc.steps[1].continue_on_failure is True
    assert sc.steps[2].expect_exit == 2
    assert [s.name for s in sc.rollback_steps] == ["clean"]
    assert sc.source == f"{tmp_path / 'x.scenario.toml'}:1"


def test_name_defaults_to_the_file_name(tmp_path: Path) -> None:
    (variant,) = load_scenario_file(
        write(tmp_path, '[[steps]]\nname = "a"\nrun = "true"\n', "smoke.scenario.toml")
    )
    assert variant.id == "smoke"
    assert variant.params == {}


def test_matrix_as_explicit_rows(tmp_path: Path) -> None:
    text = (
        "[[matrix]]\npy = '3.10'\nfast = true\n\n[[matrix]]\npy = '3.11'\nfast = false\n\n"
        "[[steps]]\nname = 'a'\nrun = 'echo ${matrix.py} ${matrix.fast}'\n"
    )
    variants = load_scenario_file(write(tmp_path, text, "m.scenario.toml"))
    assert [v.id for v in variants] == ["m[py=3.10-fast=true]", "m[py=3.11-fast=false]"]
    assert variants[1].scenario.steps[0].run == "echo 3.11 false"


BAD = [
    ("[[steps]\nname = 'a'\n", 1, "invalid TOML"),
    (
        "[scenario]\nname = 'x'\n\n[[steps]]\nname = 'a'\nrun = 'true'\nexpect_stdot = 'x'\n",
        7,
        "unknown key 'steps[0].expect_stdot'; did you mean 'expect_stdout'?",
    ),
    (
        "[[steps]]\nname = 'a'\nrun = 'true'\n\n"
        "[[steps]]\nname = 'b'\nexpect_exit = 'zero'\nrun='x'\n",
        7,
        "steps[1].expect_exit",
    ),
    ("[[steps]]\nname = 'a'\n", 1, "missing required key 'steps[0].run'"),
    ("[scenario]\nname = 'x'\n", 1, "missing required key 'steps'"),
    ("[scenario]\ntimeout = -3\n[[steps]]\nname = 'a'\nrun = 'x'\n", 2, "scenario.timeout"),
    (
        "[scenario]\nservices = ['mongodb']\n[[steps]]\nname='a'\nrun='x'\n",
        2,
        "unknown service kind 'mongodb': registered kinds are mysql, postgres, redis",
    ),
    (
        "[scenario]\npolicy = 'lax'\n[[steps]]\nname='a'\nrun='x'\n",
        2,
        "unknown cleanroom policy 'lax'",
    ),
    (
        "[[steps]]\nname='a'\nrun='x'\n\n[[steps]]\nname='a'\nrun='y'\n",
        6,
        "two steps entries are named 'a'",
    ),
    ("[[steps]]\nname='a'\nrun='x'\nexpect_stdout='(unclosed'\n", 4, "not a valid regular"),
    ("[[steps]]\nname='a'\nrun='echo ${matrix.nope}'\n", 3, "${matrix.nope} is not a matrix key"),
    (
        "[[steps]]\nname='a'\nrun='x'\ngroup='g'\n[[steps]]\nname='b'\nrun='x'\n"
        "[[steps]]\nname='c'\nrun='x'\ngroup='g'\n",
        11,
        "group 'g' must be consecutive",
    ),
    ("[matrix]\nmode = []\n[[steps]]\nname='a'\nrun='x'\n", 2, "matrix key 'mode' has no values"),
    ("[[steps]]\nname='a'\nrun=''\n", 3, "steps[0].run"),
    ("[bogus]\nx=1\n[[steps]]\nname='a'\nrun='x'\n", 1, "unknown key 'bogus'"),
]


@pytest.mark.parametrize(("text", "line", "message"), BAD)
def test_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioFileError) as info:
        load_scenario_file(path)
    assert info.value.line == line, str(info.value)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_a_multiline_string_does_not_confuse_line_numbers(tmp_path: Path) -> None:
    text = (
        '[[steps]]\nname = "a"\nrun = """\nname = fake\n"""\n\n'
        '[[steps]]\nname = "b"\nrun = "x"\ntimeout = "soon"\n'
    )
    with pytest.raises(ScenarioFileError) as info:
        load_scenario_file(write(tmp_path, text))
    assert info.value.line == 10


def test_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "gone.scenario.toml"
    with pytest.raises(ScenarioFileError, match="cannot read the scenario file"):
        load_scenario_file(path)
    path.write_bytes(b"\xff\xfe not utf-8")
    with pytest.raises(ScenarioFileError, match="cannot read"):
        load_scenario_file(path)


def test_a_toml_syntax_error_names_the_line_and_the_column(tmp_path: Path) -> None:
    path = write(tmp_path, "[scenario]\nname 'x'\n")
    with pytest.raises(ScenarioFileError) as info:
        load_scenario_file(path)
    assert info.value.line == 2
    assert str(info.value).startswith(f"{path}:2: invalid TOML: ")
    assert str(info.value).endswith("(column 6)")
