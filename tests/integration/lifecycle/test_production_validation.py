"""``ggen lifecycle validate --env production`` with ``[validation.production]``: steps run in a
real cleanroom (bwrap) on a fresh copy of the inputs, a signed statement, and the deploy gate
that tries every way around it (tampered, untrusted, stale, another project's, missing)."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
from pathlib import Path

import pytest

from pytest_cleanroom.attest.keys import SigningKey, write_key_pair
from tests.conftest import require_binary
from tests.integration.engine.conftest import require_backend
from tests.unit.lifecycle.helpers import write_project

from .conftest import ggen

pytestmark = pytest.mark.integration

MAKE_TOML = """
[project]
name = "shop"

[lifecycle.build]
commands = ["mkdir -p dist", "cp src/app.py dist/app.py"]
outputs = ["dist/app.py"]

[lifecycle.test]
command = "test -s dist/app.py && echo tests ok"

[lifecycle.deploy]
command = "echo deployed > deployed.txt"

[validation.production]
steps = ["build", "test", "audit"]
trusted_keys = ["../keys/release.pub"]
timeout = {timeout}

[validation.production.commands]
audit = "{audit}"

[readiness.thresholds.production]
min_score = 0
critical_complete = false
"""


@pytest.fixture
def key(tmp_path: Path) -> Path:
    private = tmp_path / "keys" / "release"
    private.parent.mkdir()
    write_key_pair(SigningKey.generate(), private)
    return private


def project(tmp_path: Path, audit: str = "! grep -rn password src", timeout: int = 120) -> Path:
    require_backend("bwrap")
    text = MAKE_TOML.replace("{audit}", audit).replace("{timeout}", str(timeout))
    return write_project(tmp_path / "shop", text, {"src/app.py": "print('shop')\n"})


def validate(root: Path, *args: str) -> tuple[int, dict[str, object]]:
    done = ggen(root, "validate", "--env", "production", "--backend", "bwrap", "--json", *args)
    return done.returncode, json.loads(done.stdout)


def deploy(root: Path, *args: str) -> tuple[int, str]:
    done = ggen(root, "run", "deploy", "--env", "production", *args)
    return done.returncode, done.stdout + done.stderr


def test_a_passing_validation_is_signed_verified_and_lets_deploy_run(
    tmp_path: Path, key: Path
) -> None:
    root = project(tmp_path)
    markdown_file = tmp_path / "report.md"
    code, report = validate(root, "--signing-key", str(key), "--markdown", str(markdown_file))
    assert code == 0, report
    assert report["result"] == "PASSED"
    assert report["backend"] == "bwrap"
    assert report["policy"]["name"] == "strict"  # type: ignore[index]
    steps = report["steps"]
    assert [(s["name"], s["outcome"]) for s in steps] == [  # type: ignore[attr-defined]
        ("build", "passed"),
        ("test", "passed"),
        ("audit", "passed"),
    ]
    test_step = steps[1]  # type: ignore[index]
    assert "tests ok" in test_step["outputTail"]
    assert test_step["verifies"] == ["tests"]
    assert test_step["limitsEnforcement"] in ("cgroup1", "cgroup2", "rlimit")
    readiness = report["readiness"]
    assert "tests" not in readiness["blockers"]  # type: ignore[index]  # completed by the step
    assert not (root / "dist").exists()  # the steps ran on a copy, not in the project
    markdown = markdown_file.read_text()
    assert "| test | passed |" in markdown
    assert "PASSED" in markdown
    statement = root / ".ggen/validation/production.intoto.json"
    check = _attest_verify(statement, key, root)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "project validation: PASSED (3 passed, 0 failed)" in check.stdout
    code, output = deploy(root)
    assert code == 0, output
    assert (root / "deployed.txt").read_text() == "deployed\n"
    state = json.loads((root / ".ggen/state.json").read_text())
    assert state["runs"][-1]["validation_gate"]["status"] == "passed"


def _attest_verify(statement: Path, key: Path, root: Path) -> object:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "ggen_cli", "attest", "verify", str(statement), "--key",
         f"{key}.pub", "--workspace", str(root)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip


def test_a_failing_step_blocks_with_its_remediation_and_deploy_is_refused(
    tmp_path: Path, key: Path
) -> None:
    root = project(tmp_path, audit="echo found a secret; exit 3")
    (root / "src/extra.py").write_text("x = 1\n")
    code, report = validate(root, "--signing-key", str(key))
    assert code == 1
    outcomes = [(s["name"], s["outcome"]) for s in report["steps"]]  # type: ignore[attr-defined]
    assert outcomes == [("build", "passed"), ("test", "passed"), ("audit", "failed")]
    blocker = report["blockers"][0]  # type: ignore[index]
    assert blocker["reason"] == "step audit failed: `echo found a secret; exit 3` exited 3"
    assert "fix what step 'audit' reports" in blocker["remediation"]
    assert "found a secret" in report["steps"][2]["outputTail"]  # type: ignore[index]
    code, output = deploy(root)
    assert code == 1
    assert not (root / "deployed.txt").exists()
    assert "the last validation of these inputs failed (step audit failed" in output
    assert "--allow-unvalidated" in output
    code, output = deploy(root, "--allow-unvalidated")
    assert code == 0, output
    record = json.loads((root / ".ggen/state.json").read_text())["runs"][-1]["validation_gate"]
    assert record["status"] == "overridden"
    assert "failed" in record["reason"]


def test_a_hanging_step_is_killed_at_the_timeout_and_the_rest_skipped(
    tmp_path: Path, key: Path
) -> None:
    root = project(tmp_path, timeout=3)
    text = (
        (root / "make.toml")
        .read_text()
        .replace('"test -s dist/app.py', '"sleep 600; test -s dist/app.py')
    )
    (root / "make.toml").write_text(text)
    code, report = validate(root, "--signing-key", str(key))
    assert code == 1
    steps = report["steps"]
    assert steps[1]["outcome"] == "failed"
    assert steps[1]["timedOut"] is True
    assert "timed out" in steps[1]["detail"]  # type: ignore[index]
    assert steps[2]["outcome"] == "skipped"  # type: ignore[index]
    assert "raise its timeout" in report["blockers"][0]["remediation"]  # type: ignore[index]


def test_steps_cannot_reach_the_network_or_write_the_project(tmp_path: Path, key: Path) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[object] = []
    listener.settimeout(30)
    waiter = threading.Thread(target=lambda: _accept(listener, accepted), daemon=True)
    waiter.start()
    root = project(tmp_path, audit=f"echo > /dev/tcp/127.0.0.1/{port} || true")
    connect = f"import socket; socket.create_connection(('127.0.0.1', {port}), 3)"
    probe = f'/usr/bin/python3 -c \\"{connect}\\"'
    absolute = root / "src" / "app.py"
    text = (
        (root / "make.toml")
        .read_text()
        .replace('audit = "', f'audit = "echo tampered > {absolute} || true; {probe}; #')
    )
    (root / "make.toml").write_text(text)
    code, report = validate(root)
    listener.close()
    waiter.join()
    assert code == 1
    audit = report["steps"][2]  # type: ignore[index]
    assert audit["outcome"] == "failed", audit
    assert "ConnectionRefusedError" in audit["outputTail"] or "unreachable" in audit["outputTail"]
    assert accepted == []  # the host's listener on 127.0.0.1 was never reached
    assert "cannot create" in audit["outputTail"]  # the project is not even visible
    assert absolute.read_text() == "print('shop')\n"


def _accept(listener: socket.socket, accepted: list[object]) -> None:
    with contextlib.suppress(OSError):
        accepted.append(listener.accept())


@pytest.fixture
def validated(tmp_path: Path, key: Path) -> Path:
    root = project(tmp_path)
    code, report = validate(root, "--signing-key", str(key))
    assert code == 0, report
    return root


def test_deploy_refuses_a_statement_for_changed_inputs(validated: Path) -> None:
    (validated / "src/app.py").write_text("print('changed')\n")
    (validated / "src/new.py").write_text("")
    code, output = deploy(validated)
    assert code == 1
    assert not (validated / "deployed.txt").exists()
    assert "the last validation is of other inputs (changed src/app.py, added src/new.py)" in output


def test_deploy_refuses_a_tampered_statement(validated: Path) -> None:
    path = validated / ".ggen/validation/production.intoto.json"
    envelope = json.loads(path.read_text())
    payload = json.loads(base64.b64decode(envelope["payload"]))
    payload["predicate"]["result"] = "PASSED"
    payload["predicate"]["inputs"]["files"] = 99
    envelope["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    path.write_text(json.dumps(envelope, indent=2) + "\n")
    code, output = deploy(validated)
    assert code == 1
    assert not (validated / "deployed.txt").exists()
    assert "its signature does not verify (the statement was changed)" in output


def test_deploy_refuses_a_statement_signed_by_an_untrusted_key(
    validated: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other" / "key"
    other.parent.mkdir()
    write_key_pair(SigningKey.generate(), other)
    code, report = validate(validated, "--signing-key", str(other))
    assert code == 0, report
    code, output = deploy(validated)
    assert code == 1
    assert "which is not a trusted key" in output


def test_deploy_refuses_another_projects_statement(
    validated: Path, tmp_path: Path, key: Path
) -> None:
    twin = project(tmp_path / "twin")
    (twin / "make.toml").write_text((twin / "make.toml").read_text().replace("shop", "other"))
    (twin / "make.toml").write_text(
        (twin / "make.toml").read_text().replace("../keys", "../../keys")
    )
    code, report = validate(twin, "--signing-key", str(key))
    assert code == 0, report
    target = validated / ".ggen/validation/production.intoto.json"
    target.write_bytes((twin / ".ggen/validation/production.intoto.json").read_bytes())
    code, output = deploy(validated)
    assert code == 1
    assert "it is about other for production" in output


def test_deploy_refuses_without_a_statement_or_trusted_keys(validated: Path) -> None:
    (validated / ".ggen/validation/production.intoto.json").unlink()
    code, output = deploy(validated)
    assert code == 1
    assert "there is no signed validation" in output
    text = (
        (validated / "make.toml")
        .read_text()
        .replace('trusted_keys = ["../keys/release.pub"]\n', "")
    )
    (validated / "make.toml").write_text(text)
    code, output = deploy(validated)
    assert code == 1
    assert 'add trusted_keys = ["path/to/key.pub"]' in output
    assert not (validated / "deployed.txt").exists()
    assert deploy(validated, "--dry-run")[0] == 0  # a plan runs nothing: no gate
    assert ggen(validated, "run", "deploy").returncode == 0  # no --env production: not gated


def test_a_missing_program_says_so_and_a_bad_markdown_path_runs_nothing(tmp_path: Path) -> None:
    root = project(tmp_path, audit="no-such-scanner --all")
    code, report = validate(root)
    assert code == 1
    detail = report["steps"][2]["detail"]  # type: ignore[index]
    assert "a program it runs was not found in the cleanroom (exit 127)" in detail
    done = ggen(root, "validate", "--env", "production", "--markdown", str(tmp_path / "no/r.md"))
    assert done.returncode == 1
    assert f"no directory {tmp_path / 'no'}" in done.stderr
    assert "validating" not in done.stderr  # refused before anything ran


def test_bad_inputs_leave_nothing_written(tmp_path: Path) -> None:
    root = project(tmp_path)
    done = ggen(root, "validate", "--env", "production", "--signing-key", str(tmp_path / "none"))
    assert done.returncode == 1
    assert "--signing-key" in done.stderr
    assert "none" in done.stderr
    text = (
        (root / "make.toml")
        .read_text()
        .replace(
            "[validation.production]\n", '[validation.production]\nverifies = { tsts = "test" }\n'
        )
    )
    (root / "make.toml").write_text(text)
    done = ggen(root, "validate", "--env", "production")
    assert done.returncode == 1
    assert "unknown requirement 'tsts'; did you mean 'tests'?" in done.stderr
    assert not (root / ".ggen" / "validation").exists()


def test_the_services_a_step_phase_declares_are_started_for_it(tmp_path: Path) -> None:
    require_binary("redis-server", "apt-get install redis-server")
    require_binary("redis-cli", "apt-get install redis-tools")
    root = project(tmp_path)
    text = (
        (root / "make.toml")
        .read_text()
        .replace(
            "[lifecycle.deploy]",
            '[lifecycle.test.cleanroom]\nservices = ["redis"]\n\n[lifecycle.deploy]',
        )
        .replace(
            'command = "test -s dist/app.py && echo tests ok"',
            'commands = ["test -s dist/app.py", "redis-cli -s $REDIS_SOCKET -n $REDIS_DB ping"]',
        )
    )
    (root / "make.toml").write_text(text)
    code, report = validate(root)
    assert code == 0, report
    assert "PONG" in report["steps"][1]["outputTail"]  # type: ignore[index]
    locked = text.replace("timeout = 120", "timeout = 120\npolicy = { allowed_services = [] }")
    (root / "make.toml").write_text(locked)
    done = ggen(root, "validate", "--env", "production", "--backend", "bwrap")
    assert done.returncode == 1
    assert "does not allow the services the steps need: redis" in done.stderr
