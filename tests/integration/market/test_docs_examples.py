"""The examples of docs/market.md's trust sections run as written (shell blocks through bash)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ggen_market.manifest import parse_manifest
from ggen_market.validation import read_toml
from tests.conftest import run_doc_script
from tests.integration.engine.conftest import require_backend

from .conftest import REPO, copy_examples

pytestmark = pytest.mark.integration

DOC = REPO / "docs" / "market.md"


def block(section: str, language: str, number: int = 0) -> str:
    """The ``number``-th ``language`` code block under the heading ``section``."""
    text = DOC.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    blocks = re.findall(rf"```{language}\n(.*?)```", text[start:end], re.DOTALL)
    return str(blocks[number])


def run_sh(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_doc_script(script, cwd, env={**os.environ, **env})


def test_validate_example_runs_as_written(tmp_path: Path, env: dict[str, str]) -> None:
    require_backend("bwrap")
    copy_examples(tmp_path / "example_gpacks")
    result = run_sh(block("Validating a gpack in a cleanroom", "sh"), tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PASSED: io.ggen.python.project-basics@1.2.0 under policy strict" in result.stdout
    assert "verified: 1 envelopes" in result.stdout


def test_validation_table_example_is_a_valid_manifest(tmp_path: Path) -> None:
    table = block("Validating a gpack in a cleanroom", "toml")
    manifest = tmp_path / "gpack.toml"
    manifest.write_text(f'[gpack]\nid = "io.doc.example"\nname = "x"\nversion = "1.0.0"\n\n{table}')
    parsed = parse_manifest(read_toml(manifest), manifest)
    assert parsed.validation is not None
    assert [s.name for s in parsed.validation.steps] == ["module compiles", "tests"]
    assert parsed.validation.files == {"demo/__init__.py": '"""Demo."""\n'}


def test_publish_example_runs_as_written(tmp_path: Path, env: dict[str, str]) -> None:
    require_backend("bwrap")
    copy_examples(tmp_path / "example_gpacks")
    script = block("Publishing validated gpacks, installing only those", "sh")
    result = run_sh(script, tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "by a trusted key" in result.stdout
    assert "+ io.ggen.python.cli-from-ontology@1.0.0" in result.stdout
    config = block("Publishing validated gpacks, installing only those", "toml")
    assert "require_validated = true" in config
    assert "require_validated = true" in (tmp_path / "project" / "ggen.toml").read_text()


def test_hosting_example_runs_as_written(tmp_path: Path, env: dict[str, str]) -> None:
    require_backend("bwrap")
    copy_examples(tmp_path / "example_gpacks")
    result = run_sh(block("Hosting a registry over HTTP", "sh"), tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "published io.ggen.python.project-basics@1.2.0 to http://127.0.0.1:" in result.stdout
    assert "+ io.ggen.python.project-basics@1.2.0" in result.stdout
    assert "team-upload-token" not in result.stdout + result.stderr
    served = (tmp_path / "serve.log").read_text()
    assert served.startswith("serving registry at http://127.0.0.1:")
    assert "(uploads: 1 token(s), 1 trusted key(s))" in served
    lock = (tmp_path / "project" / "ggen.lock").read_text()
    assert "http://127.0.0.1:" in lock


def test_token_env_example_is_a_valid_configuration(tmp_path: Path, env: dict[str, str]) -> None:
    from ggen_market.config import load_config

    (tmp_path / "ggen.toml").write_text(block("Hosting a registry over HTTP", "toml"))
    [team, _embedded] = load_config(tmp_path).registries
    assert (team.name, team.token_env) == ("team", "TEAM_GPACKS_TOKEN")
