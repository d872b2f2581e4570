"""Verification tries hard to be fooled: every tampering must fail and name the file."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest

from pytest_cleanroom.attest import dsse, store
from pytest_cleanroom.attest.attester import Attester
from pytest_cleanroom.attest.digests import compare, take_snapshot
from pytest_cleanroom.attest.keys import SigningKey
from pytest_cleanroom.attest.statement import AttestedTest, Builder, canonical_json
from pytest_cleanroom.attest.verify import verify

from .conftest import AttestedRun, attest_tests, make_result

NODE_A = "tests/test_a.py::test_build"


def _envelope(run: AttestedRun, nodeid: str = NODE_A) -> Path:
    return run.directory / run.envelopes[nodeid].name


def _assert_fails_naming(run: AttestedRun, path: Path, **kwargs: object) -> list[str]:
    report = verify(run.directory, key=run.public_key, **kwargs)  # type: ignore[arg-type]
    assert not report.ok
    failures = report.failures()
    assert any(str(path) in message for message in failures), failures
    return failures


def test_an_untouched_run_verifies_with_every_subject_checked(attested: AttestedRun) -> None:
    report = verify(attested.directory, key=attested.public_key)
    assert report.ok, report.failures()
    kinds = sorted(c.kind for c in report.checks)
    assert kinds == ["run", "test", "test"]
    for check in report.checks:
        if check.kind == "test":
            assert check.checked_files == 3  # two outputs and one input
            assert check.notes == []
    run_check = next(c for c in report.checks if c.kind == "run")
    assert run_check.summary == {"result": "PASSED", "passed": 2, "warned": 0, "failed": 0}
    assert report.keyid == attested.key.keyid


def test_without_key_the_key_beside_the_envelopes_is_used_and_said_so(
    attested: AttestedRun,
) -> None:
    report = verify(attested.directory)
    assert report.ok
    assert report.key_source is not None
    assert "not independently trusted" in report.key_source


def test_one_changed_byte_in_the_envelope_json(attested: AttestedRun) -> None:
    path = _envelope(attested)
    text = path.read_text()
    path.write_text(text.replace('"payloadType"', '"payloadTypE"'))
    _assert_fails_naming(attested, path)


def test_changed_payload_with_the_old_signature(attested: AttestedRun) -> None:
    path = _envelope(attested)
    data = json.loads(path.read_text())
    statement = json.loads(base64.b64decode(data["payload"]))
    external = statement["predicate"]["buildDefinition"]["externalParameters"]
    external["commands"][0]["argv"] = ["true"]
    data["payload"] = base64.b64encode(canonical_json(statement)).decode()
    path.write_text(json.dumps(data, indent=2) + "\n")
    failures = _assert_fails_naming(attested, path)
    assert any("signature does not verify" in f for f in failures)


def test_changed_signature(attested: AttestedRun) -> None:
    path = _envelope(attested)
    data = json.loads(path.read_text())
    sig = bytearray(base64.b64decode(data["signatures"][0]["sig"]))
    sig[10] ^= 0x01
    data["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    path.write_text(json.dumps(data, indent=2) + "\n")
    failures = _assert_fails_naming(attested, path)
    assert any("signature does not verify" in f for f in failures)


def test_one_changed_byte_in_an_output_file(attested: AttestedRun) -> None:
    output = attested.workspaces[NODE_A] / "build" / "app"
    data = bytearray(output.read_bytes())
    data[100] ^= 0x01
    output.write_bytes(bytes(data))
    failures = _assert_fails_naming(attested, output)
    assert any("output file changed" in f for f in failures)


def test_a_removed_output_and_a_changed_input(attested: AttestedRun) -> None:
    ws = attested.workspaces[NODE_A]
    (ws / "build" / "log.txt").unlink()
    (ws / "src" / "input.c").write_text("int main(void) { return 1; }\n")
    failures = _assert_fails_naming(attested, ws / "build" / "log.txt")
    assert any("output file missing" in f for f in failures)
    assert any(str(ws / "src" / "input.c") in f and "input file changed" in f for f in failures)


def test_wrong_key_fails_every_envelope(attested: AttestedRun, tmp_path: Path) -> None:
    other = tmp_path / "other.pub"
    other.write_bytes(SigningKey.generate().public.pem())
    report = verify(attested.directory, key=other)
    assert not report.ok
    assert all(not c.ok for c in report.checks)
    assert all("not signed by the trusted key" in c.errors[0] for c in report.checks)
    assert any(store.PUBLIC_KEY_FILE in e for e in report.errors)


def test_a_forged_directory_signed_by_another_key_fails_against_the_real_key(
    attested: AttestedRun, tmp_path: Path
) -> None:
    # The attacker re-signs everything with their own key and replaces the public key file.
    trusted = tmp_path / "trusted.pub"  # what the verifier holds, outside the directory
    shutil.copy(attested.public_key, trusted)
    forged = attest_tests(tmp_path / "forged")
    shutil.rmtree(attested.directory)
    shutil.copytree(forged.directory, attested.directory)
    assert verify(attested.directory).ok  # self-consistent...
    assert not verify(attested.directory, key=trusted).ok  # ...but not signed by our key


def test_envelope_removed_added_or_swapped(attested: AttestedRun, tmp_path: Path) -> None:
    a = _envelope(attested)
    b = _envelope(attested, "tests/test_b.py::test_other[x/y]")
    saved = a.read_bytes()
    a.unlink()
    _assert_fails_naming(attested, a)
    a.write_bytes(saved)
    extra = attested.directory / "zz-extra.intoto.json"
    extra.write_bytes(saved)
    failures = _assert_fails_naming(attested, extra)
    assert any("not listed by run.intoto.json" in f for f in failures)
    extra.unlink()
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    failures = _assert_fails_naming(attested, a)
    assert any("whose envelope is named" in f for f in failures)


def test_missing_run_statement_fails(attested: AttestedRun) -> None:
    (attested.directory / store.RUN_ENVELOPE).unlink()
    failures = _assert_fails_naming(attested, attested.directory / store.RUN_ENVELOPE)
    assert any("missing" in f for f in failures)


def test_tampered_public_key_file_is_caught_even_with_the_right_key(
    attested: AttestedRun, tmp_path: Path
) -> None:
    trusted = tmp_path / "trusted.pub"
    shutil.copy(attested.public_key, trusted)
    attested.public_key.write_bytes(SigningKey.generate().public.pem())
    report = verify(attested.directory, key=trusted)
    assert not report.ok
    assert any(str(attested.public_key) in e for e in report.errors)


def test_vanished_workspace_is_a_note_and_workspace_option_checks_elsewhere(
    attested: AttestedRun, tmp_path: Path
) -> None:
    ws = attested.workspaces[NODE_A]
    copy = tmp_path / "archived"
    shutil.copytree(ws, copy)
    shutil.rmtree(ws)
    report = verify(attested.directory, key=attested.public_key)
    assert report.ok
    check = next(c for c in report.checks if c.nodeid == NODE_A)
    assert "no longer exists" in check.notes[0]
    single = verify(_envelope(attested), key=attested.public_key, workspace=copy)
    assert single.ok, single.failures()
    assert single.checks[0].checked_files == 3
    (copy / "build" / "app").write_bytes(b"other")
    single = verify(_envelope(attested), key=attested.public_key, workspace=copy)
    assert any(str(copy / "build" / "app") in f for f in single.failures())


def test_a_subject_name_cannot_make_verify_read_outside_the_workspace(tmp_path: Path) -> None:
    run = attest_tests(tmp_path)
    path = _envelope(run)
    envelope = dsse.parse_envelope(path.read_bytes())
    statement = json.loads(envelope.payload)
    statement["subject"].append({"name": "../../etc/passwd", "digest": {"sha256": "0" * 64}})
    resigned = dsse.sign_envelope(canonical_json(statement), [(run.key.keyid, run.key.sign)])
    path.write_text(resigned.to_json())
    report = verify(path, key=run.public_key)
    assert any("is not a path inside the workspace" in f for f in report.failures())


def test_nothing_to_verify(tmp_path: Path) -> None:
    assert "no attestation envelopes" in verify(tmp_path).failures()[0]
    assert "no such file or directory" in verify(tmp_path / "absent").failures()[0]


def test_unreadable_key_is_one_error(attested: AttestedRun, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("nonsense")
    report = verify(attested.directory, key=bad)
    [failure] = report.failures()
    assert failure.startswith(f"{bad}: not a PEM public key")
    assert report.checks == []


@pytest.mark.parametrize("target", ["dir", "run"])
def test_the_run_envelope_alone_checks_its_listing(attested: AttestedRun, target: str) -> None:
    path = attested.directory if target == "dir" else attested.directory / store.RUN_ENVELOPE
    assert verify(path, key=attested.public_key).ok
    _envelope(attested).unlink()
    assert not verify(path, key=attested.public_key).ok


def test_file_names_that_are_not_utf8_are_attested_and_checked(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    before = take_snapshot(ws)
    odd = os.fsdecode(b"caf\xe9-latin1.txt")  # not valid UTF-8
    (ws / odd).write_bytes(b"data")
    out = tmp_path / "att"
    out.mkdir()
    key = SigningKey.generate()
    attester = Attester(out, key, Builder.current("r"))
    written = attester.attest_test(
        AttestedTest("t::odd", [make_result(ws, ("true",))], str(ws), compare(before), 1.0, 2.0)
    )
    public = tmp_path / "k.pub"
    public.write_bytes(key.public.pem())
    assert verify(out / written.name, key=public).ok
    (ws / odd).write_bytes(b"Data")
    assert not verify(out / written.name, key=public).ok
