"""YAML scenario files: the model of the TOML ones, the same errors, at the YAML file's lines."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from pytest_cleanroom.scenarios import plugin
from pytest_cleanroom.scenarios.files import SUFFIXES, ScenarioFileError, load_scenario_file

from .test_files import BAD, FULL

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]


def as_yaml(toml_text: str) -> str:
    return yaml.safe_dump(tomllib.loads(toml_text), sort_keys=False)


def without_sources(variants: list) -> list:  # type: ignore[type-arg]
    return [dataclasses.replace(v, scenario=dataclasses.replace(v.scenario, source=None),
                                line=0, markers_line=0) for v in variants]  # fmt: skip


def test_the_same_scenario_in_both_syntaxes_is_the_same_model(tmp_path: Path) -> None:
    toml_file = tmp_path / "release.scenario.toml"
    toml_file.write_text(FULL)
    yaml_file = tmp_path / "release.scenario.yaml"
    yaml_file.write_text(as_yaml(FULL))
    from_toml, from_yaml = load_scenario_file(toml_file), load_scenario_file(yaml_file)
    assert len(from_yaml) == 4
    assert without_sources(from_yaml) == without_sources(from_toml)


@pytest.mark.parametrize(("text", "toml_line", "message"), BAD[1:])  # BAD[0] is not TOML at all
def test_every_toml_error_reads_the_same_in_yaml(
    tmp_path: Path, text: str, toml_line: int, message: str
) -> None:
    path = tmp_path / "x.scenario.yml"
    source = as_yaml(text)
    path.write_text(source)
    with pytest.raises(ScenarioFileError) as info:
        load_scenario_file(path)
    assert message in info.value.message
    assert info.value.line is not None
    assert 1 <= info.value.line <= len(source.splitlines())


YAML_BAD = [
    ("steps:\n  - name: a\n    run: x\n    expect_stdot: y\n", 4, "did you mean 'expect_stdout'?"),
    ("scenario:\n  name: x\nsteps:\n  - name: a\n  - name: b\n    run: y\n", 4,
     "missing required key 'steps[0].run'"),
    ("steps:\n  - name: a\n    run: x\n  - name: a\n    run: y\n", 4,
     "two steps entries are named 'a'"),
    ("scenario:\n  policy: lax\nsteps:\n  - {name: a, run: x}\n", 2,
     "unknown cleanroom policy 'lax'"),
    ("steps:\n  - name: a\n    run: [x\n", 4, "invalid YAML"),
    ("steps:\n  - name: a\n    name: b\n    run: x\n", 3, "key 'steps.0.name' is given twice"),
    ("- name: a\n", 1, "expected a mapping with 'scenario' and 'steps', got a list"),
    ("", 1, "got empty"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "message"), YAML_BAD)
def test_yaml_errors_name_the_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    path = tmp_path / "bad.scenario.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioFileError) as info:
        load_scenario_file(path)
    assert info.value.line == line, str(info.value)
    assert message in str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_name_defaults_to_the_file_name_without_its_suffix(tmp_path: Path) -> None:
    path = tmp_path / "integration_tests.yaml"
    path.write_text("steps:\n  - name: a\n    run: 'true'\n")
    assert load_scenario_file(path)[0].scenario.name == "integration_tests"
    other = tmp_path / "smoke.scenario.yml"
    other.write_text("steps:\n  - name: a\n    run: 'true'\n")
    assert load_scenario_file(other)[0].scenario.name == "smoke"


def test_the_plugin_collects_exactly_the_suffixes_the_parser_reads() -> None:
    assert plugin.SUFFIXES == SUFFIXES
