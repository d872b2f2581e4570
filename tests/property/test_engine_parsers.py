"""Scenario files and attestations, fed generated and damaged input: a result or the project's own
typed error (a ScenarioError; a failed verification), within a time and memory bound."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_cleanroom.attest import dsse
from pytest_cleanroom.attest.verify import verify
from pytest_cleanroom.scenarios.files import load_scenario_file
from pytest_cleanroom.scenarios.model import ScenarioError
from tests.unit.attest.conftest import AttestedRun, attest_tests

from .conftest import bounded, json_values, mutations

SCENARIO_TOML = b"""[scenario]
name = "build"
policy = "strict"
timeout = 60
env = { MODE = "${matrix.mode}" }

[matrix]
mode = ["debug", "release"]

[[steps]]
name = "compile"
run = "mkdir -p out/$MODE && echo app > out/$MODE/app"
expect_files = ["out/${matrix.mode}/app"]
expect_exit = 0

[[rollback]]
name = "clean"
run = ["rm", "-rf", "out"]
"""
SCENARIO_YAML = b"""scenario:
  name: build
  policy: standard
matrix:
  mode: [debug, release]
steps:
  - name: compile
    run: echo ${matrix.mode}
    expect_stdout: "^(debug|release)$"
"""


@given(data=st.one_of(mutations(SCENARIO_TOML), st.binary(max_size=64)))
def test_scenario_toml(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("s") / "x.scenario.toml"
    path.write_bytes(data)
    bounded(lambda: load_scenario_file(path), (ScenarioError,))


@given(data=st.one_of(mutations(SCENARIO_YAML), st.binary(max_size=64)))
def test_scenario_yaml(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("s") / "x.scenario.yaml"
    path.write_bytes(data)
    bounded(lambda: load_scenario_file(path), (ScenarioError,))


@pytest.fixture(scope="module")
def attested(tmp_path_factory: pytest.TempPathFactory) -> AttestedRun:
    return attest_tests(tmp_path_factory.mktemp("attest"))


@given(seed=st.data())
def test_envelopes(seed: st.DataObject, attested: AttestedRun) -> None:
    envelope = next(iter(attested.envelopes.values()))
    original = (attested.directory / envelope.name).read_bytes()
    data = seed.draw(st.one_of(mutations(original), json_values.map(lambda v: repr(v).encode())))
    bounded(lambda: dsse.parse_envelope(data), (dsse.EnvelopeError,))


@given(seed=st.data())
def test_verify_reports_every_damage_as_a_failure(
    seed: st.DataObject, attested: AttestedRun, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """verify() never raises: a damaged envelope is a failure naming its file."""
    import shutil

    copy = tmp_path_factory.mktemp("copy") / "attest"
    shutil.copytree(attested.directory, copy)
    name = seed.draw(st.sampled_from(sorted(p.name for p in copy.iterdir())))
    original = (copy / name).read_bytes()
    damaged = seed.draw(mutations(original))
    (copy / name).write_bytes(damaged)
    report = bounded(lambda: verify(copy, key=attested.public_key), ())
    assert report is not None
    if damaged != original and name.endswith(".intoto.json"):
        assert not report.ok
        assert any(name in failure for failure in report.failures())


def test_the_seeds_are_valid(tmp_path: Path, attested: AttestedRun) -> None:
    """The inputs the mutations start from parse, so the properties above start from success."""
    (tmp_path / "a.scenario.toml").write_bytes(SCENARIO_TOML)
    (tmp_path / "a.scenario.yaml").write_bytes(SCENARIO_YAML)
    assert len(load_scenario_file(tmp_path / "a.scenario.toml")) == 2
    assert len(load_scenario_file(tmp_path / "a.scenario.yaml")) == 2
    assert verify(attested.directory, key=attested.public_key).ok
