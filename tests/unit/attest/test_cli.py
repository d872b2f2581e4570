"""The verify and keygen commands, run as users run them (subprocesses), exit codes and --json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import AttestedRun

ENTRY_POINTS = {
    "module": [sys.executable, "-m", "pytest_cleanroom.attest"],
    "ggen": [sys.executable, "-m", "ggen_cli", "attest"],
}


def _run(prefix: list[str], *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_verify_ok_then_tampered(attested: AttestedRun, entry: str) -> None:
    prefix = ENTRY_POINTS[entry]
    ok = _run(prefix, "verify", attested.directory, "--key", attested.public_key)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "verified: 3 envelopes" in ok.stdout
    assert "tests/test_a.py::test_build, 3 workspace files checked" in ok.stdout
    output = next(iter(attested.workspaces.values())) / "build" / "log.txt"
    output.write_text("compiled 2 files\n")
    bad = _run(prefix, "verify", attested.directory, "--key", attested.public_key)
    assert bad.returncode == 1
    assert f"error: {output}: output file changed" in bad.stderr
    assert "FAILED (1 problem):" in bad.stdout
    (attested.directory / "run.intoto.json").write_text("{}")
    worse = _run(prefix, "verify", attested.directory, "--key", attested.public_key)
    assert worse.returncode == 1
    assert "FAILED (2 problems):" in worse.stdout


def test_verify_json(attested: AttestedRun) -> None:
    done = _run(ENTRY_POINTS["module"], "verify", attested.directory, "--json")
    assert done.returncode == 0
    data = json.loads(done.stdout)
    assert data["ok"] is True
    assert data["key"]["keyid"] == attested.key.keyid
    assert {f["kind"] for f in data["files"]} == {"test", "run"}
    (attested.directory / "run.intoto.json").write_text("{}")
    done = _run(ENTRY_POINTS["module"], "verify", attested.directory, "--json")
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert data["ok"] is False
    [run] = [f for f in data["files"] if f["file"].endswith("run.intoto.json")]
    assert run["errors"] == [
        f"{attested.directory / 'run.intoto.json'}: envelope: missing payloadType, payload, "
        "signatures"
    ]


def test_keygen_then_verify_with_its_public_half(tmp_path: Path) -> None:
    done = _run(ENTRY_POINTS["ggen"], "keygen", tmp_path / "signing", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert Path(data["public"]) == tmp_path / "signing.pub"
    assert len(data["keyid"]) == 64
    again = _run(ENTRY_POINTS["ggen"], "keygen", tmp_path / "signing")
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_keygen_json_as_documented(tmp_path: Path) -> None:
    """docs/attestations.md shows `ggen attest keygen PATH --json` and its output: run it."""
    page = (Path(__file__).resolve().parents[3] / "docs" / "attestations.md").read_text()
    section = page.split("### Keys for scripts", 1)[1]
    command = section.split("```sh\n", 1)[1].split("\n```", 1)[0]
    shown = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])
    argv = command.split()
    assert argv[:3] == ["ggen", "attest", "keygen"]
    done = subprocess.run(
        [*ENTRY_POINTS["ggen"], *argv[2:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert set(data) == set(shown)
    assert (data["private"], data["public"]) == (shown["private"], shown["public"])
    assert len(data["keyid"]) == len(shown["keyid"]) == 64
    assert (tmp_path / data["private"]).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / data["public"]).read_text().startswith("-----BEGIN PUBLIC KEY-----")


def test_verify_with_a_bad_key_file_names_it(attested: AttestedRun, tmp_path: Path) -> None:
    done = _run(ENTRY_POINTS["module"], "verify", attested.directory, "--key", tmp_path / "nope")
    assert done.returncode == 1
    assert f"{tmp_path / 'nope'}: cannot read the public key" in done.stderr
