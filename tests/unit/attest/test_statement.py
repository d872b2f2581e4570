"""The statements' shapes: in-toto Statement v1, SLSA provenance v1, test-result v0.1."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from pathlib import Path

from pytest_cleanroom import __version__
from pytest_cleanroom.attest import dsse
from pytest_cleanroom.attest.digests import compare, take_snapshot
from pytest_cleanroom.attest.statement import (
    AttestedTest,
    Builder,
    canonical_json,
    ci_run_url,
    environment_digest,
    provenance_statement,
    run_result_statement,
)
from pytest_cleanroom.policy import Policy

from .conftest import AttestedRun, make_result

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _payload(path: Path) -> dict[str, object]:
    envelope = dsse.parse_envelope(path.read_bytes())
    data: dict[str, object] = json.loads(envelope.payload)
    return data


def test_provenance_statement_of_a_test(attested: AttestedRun) -> None:
    nodeid = "tests/test_a.py::test_build"
    ws = attested.workspaces[nodeid]
    data = _payload(attested.directory / attested.envelopes[nodeid].name)
    assert data["_type"] == "https://in-toto.io/Statement/v1"
    assert data["predicateType"] == "https://slsa.dev/provenance/v1"
    app = hashlib.sha256((ws / "build" / "app").read_bytes()).hexdigest()
    log = hashlib.sha256((ws / "build" / "log.txt").read_bytes()).hexdigest()
    assert data["subject"] == [
        {"name": "build/app", "digest": {"sha256": app}},
        {"name": "build/log.txt", "digest": {"sha256": log}},
    ]
    predicate = data["predicate"]
    assert isinstance(predicate, dict)
    build = predicate["buildDefinition"]
    assert build["buildType"].startswith("https://")
    assert build["externalParameters"]["test"] == nodeid
    assert build["externalParameters"]["commands"] == [
        {"argv": ["sh", "-c", "make build"], "cwd": "."}
    ]
    standard = Policy.level("standard")
    assert build["externalParameters"]["policy"] == {
        "name": "standard",
        "digest": standard.digest(),
    }
    internal = build["internalParameters"]
    assert internal["backend"] == "bwrap"
    assert internal["seed"] == 1234
    assert internal["workspace"] == str(ws)
    assert internal["environmentDigest"] == environment_digest(
        {"TZ": "UTC", "HOME": str(ws / ".home")}
    )
    source = hashlib.sha256((ws / "src" / "input.c").read_bytes()).hexdigest()
    assert build["resolvedDependencies"] == [{"name": "src/input.c", "digest": {"sha256": source}}]
    run = predicate["runDetails"]
    assert run["builder"]["id"].endswith(f"@v{__version__}")
    assert run["builder"]["version"]["pytest-cleanroom"] == __version__
    assert run["metadata"]["invocationId"] == f"run-1/{nodeid}"
    assert RFC3339.match(run["metadata"]["startedOn"])
    assert RFC3339.match(run["metadata"]["finishedOn"])
    assert run["metadata"]["startedOn"] <= run["metadata"]["finishedOn"]
    command, workspace = run["byproducts"]
    assert command["name"] == "commands/0"
    record = command["annotations"]
    assert record["exitCode"] == 0
    assert record["durationSeconds"] == 0.25
    assert record["peakMemoryBytes"] == 10 * 1024 * 1024
    assert record["cpuTimeSeconds"] == 0.125
    assert record["stdoutSha256"] == hashlib.sha256(b"built\n").hexdigest()
    # The byproduct's digest is the digest of the record it carries.
    assert command["digest"]["sha256"] == hashlib.sha256(canonical_json(record)).hexdigest()
    assert workspace["name"] == "workspace"
    assert workspace["annotations"] == {"files": 3, "removed": []}


def test_payload_is_canonical_json(attested: AttestedRun) -> None:
    for written in attested.envelopes.values():
        envelope = dsse.parse_envelope((attested.directory / written.name).read_bytes())
        assert envelope.payload == canonical_json(json.loads(envelope.payload))
        assert json.loads((attested.directory / written.name).read_text())["payload"] == (
            base64.b64encode(envelope.payload).decode()
        )


def test_no_outputs_makes_the_workspace_tree_the_subject(tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("x")
    before = take_snapshot(tmp_path)
    result = make_result(tmp_path, ("true",))
    data = provenance_statement(
        AttestedTest("t::x", [result], str(tmp_path), compare(before), time.time(), time.time()),
        Builder.current("r"),
    )
    [subject] = data["subject"]
    assert subject["name"] == "workspace-tree"
    from pytest_cleanroom.workspace import Workspace

    assert "sha256:" + subject["digest"]["sha256"] == Workspace(tmp_path).digest()


def test_a_test_without_commands_still_has_a_valid_statement(tmp_path: Path) -> None:
    data = provenance_statement(
        AttestedTest(
            "t::empty",
            [],
            str(tmp_path),
            compare(take_snapshot(tmp_path)),
            1.0,
            2.0,
            policy_name="strict",
            policy_digest="sha256:x",
            backend="bwrap",
            seed=7,
        ),
        Builder.current("r"),
    )
    build = data["predicate"]["buildDefinition"]
    assert build["externalParameters"]["commands"] == []
    assert build["externalParameters"]["policy"] == {"name": "strict", "digest": "sha256:x"}
    assert build["internalParameters"]["seed"] == 7
    assert data["predicate"]["runDetails"]["metadata"]["startedOn"] == "1970-01-01T00:00:01.000000Z"


def test_run_result_statement_outcome() -> None:
    common = {"envelopes": {"b.intoto.json": "bb", "a.intoto.json": "aa"}, "configuration": []}
    passed = run_result_statement(passed=["t2", "t1"], warned=[], failed=[], **common)  # type: ignore[arg-type]
    assert passed["predicateType"] == "https://in-toto.io/attestation/test-result/v0.1"
    assert passed["predicate"]["result"] == "PASSED"
    assert passed["predicate"]["passedTests"] == ["t1", "t2"]
    assert [s["name"] for s in passed["subject"]] == ["a.intoto.json", "b.intoto.json"]
    warned = run_result_statement(passed=["t1"], warned=["t2"], failed=[], **common)  # type: ignore[arg-type]
    assert warned["predicate"]["result"] == "WARNED"
    failed = run_result_statement(passed=["t1"], warned=["t2"], failed=["t3"], **common)  # type: ignore[arg-type]
    assert failed["predicate"]["result"] == "FAILED"
    assert failed["predicate"]["failedTests"] == ["t3"]
    assert "url" not in failed["predicate"]


def test_ci_run_url() -> None:
    assert ci_run_url({}) is None
    github = {
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "o/r",
        "GITHUB_RUN_ID": "42",
    }
    assert ci_run_url(github) == "https://github.com/o/r/actions/runs/42"
    assert ci_run_url({"CI_JOB_URL": "https://gitlab.example/j/1"}) == "https://gitlab.example/j/1"
