"""Bad attestation and report settings stop the run at start-up with one clear usage error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cleanroom.attest.keys import SigningKey
from tests.conftest import require, require_binary

pytest_plugins = ("pytester",)

ONE_TEST = "def test_nothing():\n    pass\n"
USAGE_ERROR = 4


def _readonly_run(pytester: pytest.Pytester, readonly: Path, *args: str) -> tuple[int, str]:
    """Run pytest where ``readonly`` cannot be written, even by root.

    As root, permission bits do not stop writes, so the directory is bind-mounted read-only in a
    private mount namespace (util-linux ``unshare``) that only the inner pytest sees.
    """
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    if os.geteuid() != 0:
        readonly.chmod(0o555)
        wrapped = command
    else:
        unshare = require_binary("unshare", "apt-get install util-linux")
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
        wrapped = [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            str(readonly),
        ]
        wrapped += command
    done = subprocess.run(
        wrapped, cwd=pytester.path, capture_output=True, text=True, timeout=120, check=False
    )
    return done.returncode, done.stdout + done.stderr


def test_a_read_only_attestation_directory_is_one_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_many="\n".join(f"def test_{i}():\n    pass\n" for i in range(5)))
    readonly = pytester.path / "readonly"
    readonly.mkdir()
    code, output = _readonly_run(pytester, readonly, f"--cleanroom-attest={readonly / 'att'}")
    if code == 1 and "unshare" in output and "Operation not permitted" in output:
        require(False, "a private mount namespace (unshare --mount) for the read-only directory")
    assert code == USAGE_ERROR, output
    assert output.count("cannot write attestations to") == 1, output
    assert f"--cleanroom-attest: cannot write attestations to {readonly / 'att'}" in output
    # One line, and no test was collected or run.
    reason = "Read-only file system" if os.geteuid() == 0 else "Permission denied"
    assert [line for line in output.splitlines() if line.strip()] == [
        f"ERROR: --cleanroom-attest: cannot write attestations to {readonly / 'att'}: {reason}"
    ], output
    assert "collected" not in output


def test_existing_read_only_directory_itself(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ONE_TEST)
    readonly = pytester.path / "att"
    readonly.mkdir()
    code, output = _readonly_run(pytester, readonly, f"--cleanroom-attest={readonly}")
    assert code == USAGE_ERROR, output
    assert f"cannot write attestations to {readonly}" in output
    assert "Read-only file system" in output or "Permission denied" in output


def test_attestation_directory_that_is_a_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ONE_TEST)
    blocker = pytester.path / "blocker"
    blocker.write_text("a file, not a directory")
    result = pytester.runpytest(f"--cleanroom-attest={blocker / 'sub'}")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --cleanroom-attest: cannot write attestations to *sub*"])
    assert "Not a directory" in result.stderr.str()
    assert blocker.read_text() == "a file, not a directory"


def test_signing_key_errors_name_the_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ONE_TEST)
    public = pytester.path / "k.pub"
    public.write_bytes(SigningKey.generate().public.pem())
    result = pytester.runpytest("--cleanroom-attest=att", f"--cleanroom-signing-key={public}")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: --cleanroom-signing-key: {public}: is a public key*"])
    garbage = pytester.path / "k.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    result = pytester.runpytest("--cleanroom-attest=att", f"--cleanroom-signing-key={garbage}")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(
        [f"ERROR: --cleanroom-signing-key: {garbage}: not a PEM ed25519 private key*"]
    )
    # Nothing was half-written: the key is checked before the directory is touched.
    assert not (pytester.path / "att").exists()


def test_signing_key_without_a_directory(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ONE_TEST)
    result = pytester.runpytest("--cleanroom-signing-key=k.pem")
    assert result.ret == USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --cleanroom-signing-key needs --cleanroom-attest=DIR"])


def test_report_that_cannot_be_written(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ONE_TEST)
    readonly = pytester.path / "ro"
    readonly.mkdir()
    code, output = _readonly_run(pytester, readonly, f"--cleanroom-report={readonly / 'r.json'}")
    assert code == USAGE_ERROR, output
    assert f"--cleanroom-report: cannot write {readonly / 'r.json'}" in output


def _usage_error_lines(result: pytest.RunResult) -> list[str]:
    assert result.ret == USAGE_ERROR, result.stdout.str() + result.stderr.str()
    assert "collected" not in result.stdout.str()
    return [line for line in result.stderr.str().splitlines() if line.strip()]


def test_attestation_directory_that_is_an_existing_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ONE_TEST)
    afile = pytester.path / "afile"
    afile.write_text("mine")
    result = pytester.runpytest(f"--cleanroom-attest={afile}")
    assert _usage_error_lines(result) == [
        f"ERROR: --cleanroom-attest: {afile} is a file, not a directory: give a directory "
        "for the envelopes (it is created if needed), or move the file away"
    ]
    assert afile.read_text() == "mine"


def test_report_that_is_a_directory(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ONE_TEST)
    adir = pytester.path / "adir"
    adir.mkdir()
    result = pytester.runpytest(f"--cleanroom-report={adir}")
    assert _usage_error_lines(result) == [
        f"ERROR: --cleanroom-report: {adir} is a directory, not a file: give the report's "
        f"file name, for instance --cleanroom-report={adir / 'report.json'}"
    ]
    assert list(adir.iterdir()) == []


def test_signing_key_that_does_not_exist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ONE_TEST)
    missing = pytester.path / "missing.pem"
    result = pytester.runpytest("--cleanroom-attest=att", f"--cleanroom-signing-key={missing}")
    assert _usage_error_lines(result) == [
        f"ERROR: --cleanroom-signing-key: {missing} does not exist: make a key with "
        f"`ggen attest keygen {missing}`, or leave the option out to sign with a key made "
        "for the run"
    ]
    assert not (pytester.path / "att").exists()


def test_signing_key_that_is_a_directory(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(ONE_TEST)
    keydir = pytester.path / "keys"
    keydir.mkdir()
    result = pytester.runpytest("--cleanroom-attest=att", f"--cleanroom-signing-key={keydir}")
    assert _usage_error_lines(result) == [
        f"ERROR: --cleanroom-signing-key: {keydir} is a directory, not a key file: give the "
        "PEM private key file (`ggen attest keygen PATH` makes one)"
    ]
    assert not (pytester.path / "att").exists()
