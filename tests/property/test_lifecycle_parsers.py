"""The lifecycle's parsers (make.toml, state.json, production.toml), fed generated and damaged
input: the only outcomes are a result or the package's own typed error, each within a time and
memory bound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ggen_lifecycle import readiness as rd
from ggen_lifecycle.config import load_project
from ggen_lifecycle.errors import LifecycleError
from ggen_lifecycle.graph import build_graph
from ggen_lifecycle.state import CorruptStateError, StateStore, parse_state

from .conftest import bounded, json_values, mutations

MAKE_TOML = b"""[project]
name = "demo"

[env]
LOG = "debug"
[env.production]
LOG = "warn"

[workspace.lib]
path = "lib"
[workspace.app]
path = "app"
depends_on = ["lib"]

[lifecycle.build]
commands = ["mkdir -p dist", "echo built > dist/out.txt"]
inputs = ["src/**", "!src/gen/**"]
outputs = ["dist/out.txt"]
timeout = 30
env = { OPT = 2 }

[lifecycle.test]
command = "true"
depends_on = ["build"]
parallel = false

[lifecycle.ci]
depends_on = ["test"]
workspaces = []

[hooks]
before_all = "echo start"
before_build = ["echo pre"]
on_error = "echo failed"

[cache]
max_size = "2GiB"

[readiness]
patterns = ["TODO", "(?i)fixme"]
[readiness.thresholds.production]
min_score = 90
max_placeholders = 0
"""
STATE = json.dumps(
    {
        "format": 1,
        "runs": [
            {
                "run_id": "20250101T000000-abcdef",
                "phases": ["build"],
                "environment": None,
                "workspace": None,
                "start": 1.5,
                "duration": 0.25,
                "result": "success",
                "tasks": 1,
            }
        ],
        "tasks": [
            {
                "run_id": "20250101T000000-abcdef",
                "phase": "build",
                "workspace": "lib",
                "kind": "task",
                "start": 1.5,
                "duration": 0.2,
                "result": "success",
                "exit_code": 0,
                "cache": "miss",
                "cache_key": "ab" * 32,
                "error": None,
            }
        ],
    }
).encode()
PRODUCTION = b"""starter = true

[[requirement]]
id = "tests"
status = "complete"
notes = "pytest in CI"

[[requirement]]
id = "gdpr-export"
name = "Users can export their data"
category = "important"
status = "needs-review"
notes = '''
several lines
'''
"""


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lifecycle")
    for workspace in ("lib", "app"):
        (root / workspace / "src").mkdir(parents=True)
    return root


@given(data=mutations(MAKE_TOML))
def test_make_toml(data: bytes, project_dir: Path) -> None:
    (project_dir / "make.toml").write_bytes(data)

    def load_and_plan() -> object:
        project = load_project(project_dir)
        return build_graph(project, project.declared_phases())

    bounded(load_and_plan, (LifecycleError,))


@given(data=mutations(STATE) | st.builds(lambda v: json.dumps(v).encode(), json_values))
def test_state_json(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    bounded(lambda: parse_state(data), (CorruptStateError,))
    path = tmp_path_factory.mktemp("state") / "state.json"
    path.write_bytes(data)
    warnings: list[str] = []
    state = bounded(lambda: StateStore(path, warn=warnings.append).read(), ())
    assert state is not None
    assert isinstance(state["runs"], list)
    assert len(warnings) <= 1  # a corrupted file is reported once, and set aside


@given(data=mutations(PRODUCTION))
def test_production_toml(data: bytes, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("readiness")
    (root / ".ggen").mkdir()
    (root / ".ggen/production.toml").write_bytes(data)
    requirements = bounded(lambda: rd.load_requirements(root), (LifecycleError,))
    if requirements is not None:
        assert 0 <= rd.score(requirements).score <= 100


@given(notes=st.text(max_size=40), status=st.sampled_from(["needs-review", "placeholder"]))
def test_production_toml_edits(
    notes: str, status: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("edits")
    (root / ".ggen").mkdir()
    (root / ".ggen/production.toml").write_bytes(PRODUCTION)
    bounded(lambda: rd.update_status(root, "docs", status, notes), (LifecycleError,))
    (docs,) = [r for r in rd.load_requirements(root) if r.id == "docs"]
    if docs.status == status:  # written: exactly what was asked, and readable again
        assert docs.notes == notes
