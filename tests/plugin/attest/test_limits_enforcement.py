"""Every record says how a command's limits were enforced, as it happened: the RunResult, the
JSON report, the JUnit properties and the attestation (cgroup1 here, docker for the docker
backend, rlimit when cgroups are switched off), never more than the command had."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, cgroups
from tests.conftest import require
from tests.security.backends import SECURITY_BACKENDS, require_backend

from .conftest import envelopes_by_nodeid, run_pytest, statement_of

pytestmark = pytest.mark.integration

# No nested user namespaces: without cgroups, the local backends refuse them as root.
TEST = """
import pytest

@pytest.mark.cleanroom(nested_user_namespaces=False)
def test_one(cleanroom):
    cleanroom.run(["true"]).assert_success()
"""


def expected(backend: str, cgroups_on: bool) -> str:
    if backend == "docker":
        return "docker"
    return "cgroup1" if cgroups_on else "rlimit"


@pytest.mark.parametrize(
    ("backend", "cgroups_on"), [*((b, True) for b in SECURITY_BACKENDS), ("bwrap", False)]
)
def test_every_record_names_what_enforced_the_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str, cgroups_on: bool
) -> None:
    require_backend(backend)
    if cgroups_on and backend != "docker":
        require(cgroups.parents() is not None, f"cgroup v1 ({cgroups.why_unavailable()})")
    if not cgroups_on:
        monkeypatch.setenv(cgroups.SWITCH, "off")
    want = expected(backend, cgroups_on)
    # Root without cgroups cannot bound processes: permissive (no max_processes) runs anyway.
    # (The RunResult, then the records of a real pytest run.)
    policy = "locked" if cgroups_on else "permissive"
    with Cleanroom(
        tmp_path / "ws", backend=backend, policy={"level": policy, "nested_user_namespaces": False}
    ) as room:
        assert room.run(["true"]).limits_enforcement == want
    (tmp_path / "test_one.py").write_text(TEST)
    done = run_pytest(
        tmp_path,
        f"--cleanroom-backend={backend}",
        f"--cleanroom-policy={policy}",
        "--cleanroom-attest=att",
        "--cleanroom-report=report.json",
        "--junitxml=junit.xml",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [command] = json.loads((tmp_path / "report.json").read_text())["commands"]
    assert command["limits_enforcement"] == want
    props = {
        p.get("name"): p.get("value") for p in ET.parse(tmp_path / "junit.xml").iter("property")
    }
    assert props["cleanroom_limits_enforcement"] == want
    statement = statement_of(envelopes_by_nodeid(tmp_path / "att")["test_one.py::test_one"])
    build = statement["predicate"]["buildDefinition"]
    assert build["internalParameters"]["limitsEnforcement"] == [want]
    [record] = [b["annotations"] for b in statement["predicate"]["runDetails"]["byproducts"][:1]]
    assert record["limitsEnforcement"] == want
    assert os.environ.get(cgroups.SWITCH) == (None if cgroups_on else "off")


PER_PROCESS_TEST = """
import pytest

@pytest.mark.cleanroom(nested_user_namespaces=False, memory_limit=512 * 1024 * 1024)
def test_one(cleanroom):
    cleanroom.run(["true"]).assert_success()
"""


def test_per_process_limits_are_opted_in_and_named_in_every_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a cgroup (switched off: what an unprivileged user gets; as root, permissive keeps
    # max_processes out of it), a memory limit holds per process only.
    require_backend("bwrap")
    monkeypatch.setenv(cgroups.SWITCH, "off")
    (tmp_path / "test_one.py").write_text(PER_PROCESS_TEST)
    args = ("--cleanroom-backend=bwrap", "--cleanroom-policy=permissive")
    refused = run_pytest(tmp_path, *args)
    assert refused.returncode == 1
    assert "cannot hold memory_limit=536870912 of policy" in refused.stdout
    assert "--cleanroom-per-process-limits (ini: cleanroom_per_process_limits" in refused.stdout

    (tmp_path / "pytest.ini").write_text("[pytest]\ncleanroom_per_process_limits = yes\n")
    done = run_pytest(
        tmp_path, *args, "--cleanroom-attest=att", "--cleanroom-report=r.json", "--junitxml=j.xml"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "limits held by rlimit, per process (no cgroup: disabled by" in done.stdout
    [command] = json.loads((tmp_path / "r.json").read_text())["commands"]
    name = command["policy"]
    assert name.endswith("+per_process_limits")
    assert command["limits_enforcement"] == "rlimit"
    props = {p.get("name"): p.get("value") for p in ET.parse(tmp_path / "j.xml").iter("property")}
    assert props["cleanroom_policy"] == name
    statement = statement_of(envelopes_by_nodeid(tmp_path / "att")["test_one.py::test_one"])
    policy = statement["predicate"]["buildDefinition"]["externalParameters"]["policy"]
    assert policy["name"] == name
    assert policy["digest"] == command["policy_digest"]

    (tmp_path / "pytest.ini").write_text("[pytest]\ncleanroom_per_process_limits = maybe\n")
    bad = run_pytest(tmp_path, *args)
    assert bad.returncode == 4
    assert "cleanroom_per_process_limits" in bad.stderr


def test_as_root_without_cgroups_the_header_names_where_auto_runs_the_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """standard lets commands nest user namespaces, which root without cgroups may not give
    them on bwrap or unshare, per-process limits accepted or not: the header must name the
    backend auto really takes (it said 'backend=bwrap (auto)' with the opt-in, and every
    command then ran on docker)."""
    require(os.geteuid() == 0, "root (an unprivileged user's bwrap may nest user namespaces)")
    require_backend("bwrap")
    monkeypatch.setenv(cgroups.SWITCH, "off")
    (tmp_path / "test_one.py").write_text("def test_one(cleanroom):\n    cleanroom.run(['true'])\n")
    done = run_pytest(tmp_path, "--cleanroom-per-process-limits", "--cleanroom-report=r.json")
    header = re.search(r"^cleanroom: policy=standard backend=(\S+)", done.stdout, re.MULTILINE)
    assert header is not None, done.stdout
    assert header.group(1) not in ("bwrap", "unshare"), done.stdout
    assert "bwrap: the bwrap backend cannot let commands of policy 'standard'" in done.stdout
    if header.group(1) == "auto":  # 'backend=auto UNAVAILABLE': no Docker engine answers
        assert (
            not (tmp_path / "r.json").exists()
            or not json.loads((tmp_path / "r.json").read_text())["commands"]
        ), done.stdout
        return
    [command] = json.loads((tmp_path / "r.json").read_text())["commands"]
    assert command["backend"] == header.group(1)
    assert f"limits held by {command['limits_enforcement']}" in done.stdout
