"""``ggen`` installed without an extra: one clear line and exit 2, never a traceback.

The dev venv has every extra, so the packages an extra brings are made unimportable for real in
a child ``ggen`` process: a ``sitecustomize`` placed first on PYTHONPATH puts a meta-path finder
in front of the import system that refuses them, just as an interpreter without them would
(``ModuleNotFoundError``). The blocked list is what a plain ``pip install pytest-cleanroom``
lacks: the base dependencies (pytest pulls in packaging) stay importable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MARKET_ONLY = ("semver", "httpx", "jinja2", "rdflib", "yaml")
SERVICES = ("psycopg", "redis")

BLOCKER = '''
import os
import sys

BLOCKED = set(os.environ["GGEN_TEST_BLOCKED"].split(","))


class Blocker:
    """Refuses the blocked packages, as if they were not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Blocker())
'''


def ggen(
    tmp_path: Path, blocked: tuple[str, ...], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "blocker"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "GGEN_TEST_BLOCKED": ",".join(blocked),
        "GGEN_CONFIG": str(tmp_path / "no-config.toml"),
    }
    return subprocess.run(
        [sys.executable, "-m", "ggen_cli", *args],
        cwd=cwd or tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    probe = ggen(tmp_path, MARKET_ONLY, "--version")
    assert probe.returncode == 0, probe.stderr
    site = tmp_path / "blocker"
    done = subprocess.run(
        [sys.executable, "-c", "import semver"],
        env={**os.environ, "PYTHONPATH": str(site), "GGEN_TEST_BLOCKED": "semver"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert "No module named 'semver'" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("market", "search", "cli"),
        ("market", "list"),
        ("market", "add", "io.ggen.python.cli-from-ontology"),
        ("template", "list"),
        ("template", "generate", "io.ggen.python.project-basics"),
    ],
    ids=" ".join,
)
def test_market_and_template_without_the_market_extra(tmp_path: Path, args: tuple[str]) -> None:
    done = ggen(tmp_path, MARKET_ONLY, *args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"ggen {args[0]}: error: the ")
    assert "package is missing" in lines[0]
    assert "pip install 'pytest-cleanroom[market]'" in lines[0]
    assert not (tmp_path / "ggen.lock").exists()
    assert not (tmp_path / ".ggen").exists()
    assert done.stdout == ""


def test_json_output_says_what_is_missing(tmp_path: Path) -> None:
    done = ggen(tmp_path, MARKET_ONLY, "market", "search", "cli", "--json")
    assert done.returncode == 2, done.stderr
    error = json.loads(done.stdout)
    assert error["ok"] is False
    assert error["kind"] == "MissingExtra"
    assert "pip install 'pytest-cleanroom[market]'" in error["error"]


def test_lifecycle_and_attest_need_no_market_extra(tmp_path: Path) -> None:
    (tmp_path / "make.toml").write_text(
        '[project]\nname = "p"\n\n[lifecycle.build]\ncommand = "echo built"\n'
    )
    listed = ggen(tmp_path, MARKET_ONLY + SERVICES, "lifecycle", "list")
    assert listed.returncode == 0, listed.stderr
    assert "build" in listed.stdout
    ran = ggen(tmp_path, MARKET_ONLY + SERVICES, "lifecycle", "run", "build")
    assert ran.returncode == 0, ran.stderr
    assert "built" in ran.stdout
    key = tmp_path / "signing-key"
    made = ggen(tmp_path, MARKET_ONLY + SERVICES, "attest", "keygen", str(key))
    assert made.returncode == 0, made.stderr
    assert key.exists()


def test_a_service_phase_without_the_services_extra(tmp_path: Path) -> None:
    (tmp_path / "make.toml").write_text(
        '[project]\nname = "p"\n\n[lifecycle.test]\ncommand = "echo never"\n'
        '[lifecycle.test.cleanroom]\nenabled = true\nservices = ["postgres"]\n'
    )
    ran = ggen(tmp_path, SERVICES, "lifecycle", "run", "test")
    assert ran.returncode == 1, ran.stderr
    assert "Traceback" not in ran.stderr
    assert "internal error" not in ran.stderr
    assert "the psycopg package is missing" in ran.stderr
    assert "pip install 'pytest-cleanroom[services]'" in ran.stderr
    assert "never" not in ran.stdout
