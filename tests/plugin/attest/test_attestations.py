"""Attestations of real sandboxed commands, driven through pytest: formats, keys, tampering."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_cleanroom.attest.keys import SigningKey, write_key_pair
from pytest_cleanroom.attest.verify import verify

from .conftest import basetemp_of, envelopes_by_nodeid, run_pytest, statement_of

pytest_plugins = ("pytester",)

BUILD = """
import pytest

def test_build(cleanroom, workspace):
    workspace.write("src/name.txt", "world\\n")  # an input: written before any command
    cleanroom.run("mkdir -p out && sed 's/^/hello /' src/name.txt > out/greeting.txt")
    cleanroom.run(["sh", "-c", "wc -c < out/greeting.txt > out/size.txt"]).assert_success()

def test_no_output(cleanroom, workspace):
    workspace.write("data.txt", "x")
    cleanroom.run(["cat", "data.txt"]).assert_success()

def test_failing_command(cleanroom):
    result = cleanroom.run(["sh", "-c", "echo oops >&2; exit 3"])
    assert result.exit_code == 0, result.describe()

def test_without_cleanroom():
    pass
"""

VERIFY = [sys.executable, "-m", "pytest_cleanroom.attest", "verify"]


def _verify_cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VERIFY, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture(scope="module")
def attested_run(tmp_path_factory: pytest.TempPathFactory, sandbox: None) -> Path:
    """One real run shared by the module's read-mostly tests (each restores what it changes)."""
    root = tmp_path_factory.mktemp("attested")
    (root / "test_build.py").write_text(BUILD)
    done = run_pytest(root, "--cleanroom-attest=att", "--junitxml=junit.xml")
    if "prerequisite missing" in done.stdout or done.returncode not in (0, 1):
        pytest.fail(f"the inner run did not complete:\n{done.stdout}\n{done.stderr}")
    assert "1 failed, 3 passed" in done.stdout, done.stdout
    return root / "att"


def test_one_envelope_per_cleanroom_test_with_outputs_as_subjects(
    attested_run: Path,
) -> None:
    directory = attested_run
    envelopes = envelopes_by_nodeid(directory)
    assert sorted(envelopes) == [
        "test_build.py::test_build",
        "test_build.py::test_failing_command",
        "test_build.py::test_no_output",
    ]
    data = json.loads(envelopes["test_build.py::test_build"].read_text())
    assert data["payloadType"] == "application/vnd.in-toto+json"
    assert len(data["signatures"]) == 1
    statement = statement_of(envelopes["test_build.py::test_build"])
    build = statement["predicate"]["buildDefinition"]
    workspace = Path(build["internalParameters"]["workspace"])
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    assert sorted(subjects) == ["out/greeting.txt", "out/size.txt"]
    greeting = (workspace / "out" / "greeting.txt").read_bytes()
    assert greeting == b"hello world\n"
    assert subjects["out/greeting.txt"] == hashlib.sha256(greeting).hexdigest()
    # What the test wrote before the first command is an input, with its digest.
    assert [d["name"] for d in build["resolvedDependencies"]] == ["src/name.txt"]
    argv = [c["argv"] for c in build["externalParameters"]["commands"]]
    assert argv[1] == ["sh", "-c", "wc -c < out/greeting.txt > out/size.txt"]
    assert build["externalParameters"]["policy"]["name"] == "standard"
    assert build["internalParameters"]["backend"] in ("bwrap", "unshare")
    records = [b["annotations"] for b in statement["predicate"]["runDetails"]["byproducts"][:2]]
    assert [r["exitCode"] for r in records] == [0, 0]
    assert all(r["durationSeconds"] > 0 for r in records)
    # Nothing produced: the workspace tree itself is the subject.
    [tree] = statement_of(envelopes["test_build.py::test_no_output"])["subject"]
    assert tree["name"] == "workspace-tree"
    failing = statement_of(envelopes["test_build.py::test_failing_command"])
    [record] = [b["annotations"] for b in failing["predicate"]["runDetails"]["byproducts"][:1]]
    assert record["exitCode"] == 3
    assert record["stderrSha256"] == hashlib.sha256(b"oops\n").hexdigest()


def test_run_statement_and_verification(attested_run: Path) -> None:
    directory = attested_run
    run = statement_of(directory / "run.intoto.json")
    assert run["predicate"]["result"] == "FAILED"
    assert run["predicate"]["failedTests"] == ["test_build.py::test_failing_command"]
    assert len(run["predicate"]["passedTests"]) == 3
    assert len(run["subject"]) == 3
    done = _verify_cli(directory, "--key", directory / "cleanroom-attest.pub")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified: 4 envelopes" in done.stdout


def test_junit_properties(attested_run: Path) -> None:
    directory = attested_run
    tree = ET.parse(directory.parent / "junit.xml")
    props = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
        for case in tree.iter("testcase")
    }
    assert props["test_without_cleanroom"] == {}
    build = props["test_build"]
    assert build["cleanroom_backend"] in ("bwrap", "unshare")
    assert build["cleanroom_policy"] == "standard"
    assert build["cleanroom_seed"].isdigit()
    envelope = envelopes_by_nodeid(directory)["test_build.py::test_build"]
    expected = "sha256:" + hashlib.sha256(envelope.read_bytes()).hexdigest()
    assert build["cleanroom_attestation_digest"] == expected


def test_tampering_after_a_real_run_is_caught(attested_run: Path) -> None:
    directory = attested_run
    key = directory / "cleanroom-attest.pub"
    envelope = envelopes_by_nodeid(directory)["test_build.py::test_build"]
    workspace = Path(
        statement_of(envelope)["predicate"]["buildDefinition"]["internalParameters"]["workspace"]
    )
    # In the inner run's own base temporary directory, which no other pytest run removes.
    assert workspace.is_relative_to(basetemp_of(directory.parent))
    output = workspace / "out" / "greeting.txt"
    original_output = output.read_bytes()
    output.write_bytes(original_output.replace(b"world", b"World"))
    done = _verify_cli(directory, "--key", key)
    assert done.returncode == 1
    assert f"{output}: output file changed" in done.stderr
    output.write_bytes(original_output)
    assert _verify_cli(directory, "--key", key).returncode == 0

    original = envelope.read_bytes()
    data = json.loads(original)
    statement = json.loads(base64.b64decode(data["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    data["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    envelope.write_text(json.dumps(data, indent=2) + "\n")
    done = _verify_cli(directory, "--key", key, "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    [entry] = [f for f in report["files"] if f["file"] == str(envelope)]
    assert any("signature does not verify" in e for e in entry["errors"])
    envelope.write_bytes(original)

    data = json.loads(original)
    sig = bytearray(base64.b64decode(data["signatures"][0]["sig"]))
    sig[0] ^= 0x80
    data["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    envelope.write_text(json.dumps(data, indent=2) + "\n")
    assert str(envelope) in _verify_cli(directory, "--key", key).stderr
    envelope.write_bytes(original)

    wrong = directory.parent / "wrong.pub"
    wrong.write_bytes(SigningKey.generate().public.pem())
    done = _verify_cli(directory, "--key", wrong)
    assert done.returncode == 1
    assert "not signed by the trusted key" in done.stderr
    assert _verify_cli(directory, "--key", key).returncode == 0


def test_a_given_signing_key_signs_everything(pytester: pytest.Pytester, sandbox: None) -> None:
    key = SigningKey.generate()
    public = write_key_pair(key, pytester.path / "signing.pem")
    pytester.makepyfile(test_build=BUILD)
    result = pytester.runpytest_subprocess(
        "--cleanroom-attest=att", "--cleanroom-signing-key=signing.pem"
    )
    result.assert_outcomes(passed=3, failed=1)
    directory = pytester.path / "att"
    report = verify(directory, key=public)
    assert report.ok, report.failures()
    assert report.keyid == key.keyid
    assert (directory / "cleanroom-attest.pub").read_bytes() == public.read_bytes()
    assert not any("PRIVATE" in p.read_text() for p in directory.iterdir())
    result.stdout.fnmatch_lines([f"verify: ggen attest verify {directory} --key *signing.pem.pub"])


XDIST_TESTS = """
import warnings
import pytest

@pytest.mark.parametrize("n", range(6))
def test_make(cleanroom, n):
    cleanroom.run(["sh", "-c", f"echo {n} > out-{n}.txt"]).assert_success()

def test_fails():
    assert False

def test_warns():
    warnings.warn(UserWarning("careful"))

def test_skipped():
    pytest.skip("not here")
"""


def test_xdist_two_workers_then_verify(pytester: pytest.Pytester, sandbox: None) -> None:
    pytester.makepyfile(test_make=XDIST_TESTS)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--cleanroom-attest=att", "--cleanroom-report=report.json", "--junitxml=j.xml"
    )
    result.assert_outcomes(passed=7, failed=1, skipped=1, warnings=1)
    directory = pytester.path / "att"
    # The controller classified every worker's tests.
    predicate = statement_of(directory / "run.intoto.json")["predicate"]
    assert predicate["result"] == "FAILED"
    assert predicate["failedTests"] == ["test_make.py::test_fails"]
    assert predicate["warnedTests"] == ["test_make.py::test_warns"]
    assert len(predicate["passedTests"]) == 6
    envelopes = envelopes_by_nodeid(directory)
    assert len(envelopes) == 6
    keyids = {json.loads(p.read_text())["signatures"][0]["keyid"] for p in envelopes.values()}
    assert len(keyids) == 1  # every worker signed with the controller's key
    done = _verify_cli(directory, "--key", directory / "cleanroom-attest.pub")
    assert done.returncode == 0, done.stdout + done.stderr
    for nodeid, path in envelopes.items():
        n = nodeid.rsplit("[", 1)[1].rstrip("]")
        [subject] = statement_of(path)["subject"]
        assert subject["name"] == f"out-{n}.txt"
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["summary"]["commands"] == 6
    assert report["run"]["workers"] == 2
    assert sorted(c["command"] for c in report["commands"]) == sorted(
        f"sh -c 'echo {n} > out-{n}.txt'" for n in range(6)
    )
    tree = ET.parse(pytester.path / "j.xml")
    digests = [
        p.get("value")
        for p in tree.iter("property")
        if p.get("name") == "cleanroom_attestation_digest"
    ]
    assert len(digests) == 6


LOSES_DIRECTORY = """
import shutil
from pathlib import Path

def test_a_breaks_the_directory(request):
    directory = Path(request.config.getoption("cleanroom_attest"))
    shutil.rmtree(directory)
    directory.write_text("not a directory any more")

def test_b_uses_a_cleanroom(cleanroom):
    cleanroom.run(["true"]).assert_success()
"""


def test_a_directory_lost_during_the_run_is_a_clear_error(
    pytester: pytest.Pytester, sandbox: None
) -> None:
    pytester.makepyfile(test_lose=LOSES_DIRECTORY)
    result = pytester.runpytest_subprocess("--cleanroom-attest=att")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*AttestationError: cannot attest test_lose.py::test_b_uses_a_cleanroom "
            "(attestations in */att): *Not a directory*",
            "cleanroom: ERROR: cannot write the run statement in */att: *Not a directory*",
        ],
        consecutive=False,
    )
    assert "INTERNALERROR" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
