"""Builders for attestation directories made with the real library (real keys, real files)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_cleanroom.attest.attester import Attester, WrittenEnvelope
from pytest_cleanroom.attest.digests import compare, take_snapshot
from pytest_cleanroom.attest.keys import SigningKey
from pytest_cleanroom.attest.statement import AttestedTest, Builder
from pytest_cleanroom.policy import Policy
from pytest_cleanroom.result import RunResult


def make_result(workspace: Path, command: tuple[str, ...], **changes: object) -> RunResult:
    """A RunResult as the engine reports it (the files it names are written by the caller)."""
    policy = Policy.level("standard")
    fields: dict[str, object] = {
        "command": command,
        "exit_code": 0,
        "stdout_bytes": b"built\n",
        "stderr_bytes": b"",
        "duration": 0.25,
        "backend": "bwrap",
        "policy_name": policy.name,
        "policy_digest": policy.digest(),
        "seed": 1234,
        "peak_memory": 10 * 1024 * 1024,
        "cpu_time": 0.125,
        "workspace": workspace,
        "environment": {"TZ": "UTC", "HOME": str(workspace / ".home")},
        "started_at": time.time(),
    }
    fields.update(changes)
    return RunResult(**fields)  # type: ignore[arg-type]


@dataclass
class AttestedRun:
    directory: Path
    key: SigningKey
    public_key: Path
    workspaces: dict[str, Path]
    envelopes: dict[str, WrittenEnvelope]


def attest_tests(
    tmp_path: Path, nodeids: tuple[str, ...] = ("tests/test_a.py::test_build",)
) -> AttestedRun:
    """Attest each test: an input file exists at creation, the 'command' writes two outputs."""
    directory = tmp_path / "attest"
    directory.mkdir(parents=True)
    key = SigningKey.generate()
    attester = Attester(directory, key, Builder.current("run-1"))
    workspaces: dict[str, Path] = {}
    envelopes: dict[str, WrittenEnvelope] = {}
    for index, nodeid in enumerate(nodeids):
        ws = tmp_path / f"ws{index}"
        (ws / "src").mkdir(parents=True)
        (ws / "src" / "input.c").write_text("int main(void) { return 0; }\n")
        before = take_snapshot(ws)
        started = time.time()
        (ws / "build").mkdir()
        (ws / "build" / "app").write_bytes(b"\x7fELF" + bytes(range(256)))
        (ws / "build" / "log.txt").write_text("compiled 1 file\n")
        result = make_result(ws, ("sh", "-c", "make build"))
        written = attester.attest_test(
            AttestedTest(
                nodeid=nodeid,
                results=[result],
                workspace=str(ws),
                changes=compare(before),
                started_at=started,
                finished_at=time.time(),
            )
        )
        workspaces[nodeid] = ws
        envelopes[nodeid] = written
    attester.attest_run(
        passed=list(nodeids),
        warned=[],
        failed=[],
        envelopes={w.name: w.sha256 for w in envelopes.values()},
        configuration=[],
    )
    public = attester.write_public_key()
    return AttestedRun(directory, key, public, workspaces, envelopes)


@pytest.fixture
def attested(tmp_path: Path) -> AttestedRun:
    return attest_tests(
        tmp_path, ("tests/test_a.py::test_build", "tests/test_b.py::test_other[x/y]")
    )
