"""docs/scaling.md: the one-machine example runs as written; the CI and Kubernetes examples, which
cannot run here, are parsed and their options checked against the real ones."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ggen_lifecycle.config import load_project
from ggen_lifecycle.remote_cache.settings import VARIABLES
from tests.conftest import require, run_doc_script
from tests.integration.lifecycle.turbo_server import server_cli

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[3] / "docs" / "scaling.md"
TEXT = DOC.read_text()
BIN = Path(sys.executable).parent


def blocks(language: str) -> list[str]:
    return [str(b) for b in re.findall(rf"```{language}\n(.*?)```", TEXT, re.DOTALL)]


def help_text(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_the_one_machine_example_runs_as_written(tmp_path: Path) -> None:
    require(shutil.which("bwrap") is not None, "bubblewrap (apt-get install bubblewrap)")
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    require(probe.returncode == 0, "unshare --net (root and util-linux)")
    (script,) = blocks("bash")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE"))}
    done = run_doc_script(script, tmp_path, env=env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "merged 3 shards (10 passed, 0 failed)" in done.stdout
    assert re.search(r"^verified: \d+ envelopes in merged", done.stdout, re.MULTILINE)


def cleanroom_options(text: str) -> set[str]:
    return set(re.findall(r"--cleanroom-[a-z-]+", text))


def test_the_ci_and_kubernetes_examples_use_real_options() -> None:
    documents = [d for block in blocks("yaml") for d in yaml.safe_load_all(block)]
    kinds = {d.get("kind") or d.get("name") for d in documents}
    assert {"Job", "Deployment", "Service", "tests"} <= kinds
    pytest_help = help_text(sys.executable, "-m", "pytest", "--help")
    used = cleanroom_options(TEXT)
    assert used <= cleanroom_options(pytest_help), used - cleanroom_options(pytest_help)
    merge_help = help_text(str(BIN / "ggen"), "attest", "merge", "--help")
    for option in ("--out", "--key", "--shard-key"):
        assert option in merge_help
    job = next(d for d in documents if d.get("kind") == "Job")
    assert job["spec"]["completionMode"] == "Indexed"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    count = next(e for e in container["env"] if e["name"] == "CLEANROOM_SHARD_COUNT")
    assert count["value"] == str(job["spec"]["completions"])


def test_the_remote_cache_examples_match_the_code_and_the_server() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)`", TEXT, re.MULTILINE))
    assert documented == set(VARIABLES)
    cli = server_cli()
    require(cli is not None, "turborepo-remote-cache (scripts/setup.sh installs it)")
    assert cli is not None
    schema = (cli.parent / "env.js").read_text()
    deployment = next(
        d for b in blocks("yaml") for d in yaml.safe_load_all(b) if d.get("kind") == "Deployment"
    )
    names = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    console = next(b for b in blocks("console") if "turborepo-remote-cache" in b)
    names |= set(re.findall(r"\b([A-Z][A-Z_]+)=", console))
    assert all(re.search(rf"\b{name}\b", schema) for name in names), names


def test_the_make_toml_example_is_valid(tmp_path: Path) -> None:
    table = next(b for b in blocks("toml") if "[cache.remote]" in b)
    (tmp_path / "make.toml").write_text('[lifecycle.build]\ncommand = "true"\n\n' + table)
    remote = load_project(tmp_path).spec.cache.remote
    assert (remote.url, remote.team, remote.mode, remote.signature) == (
        "https://cache.example.com",
        "acme",
        "read-write",
        True,
    )
