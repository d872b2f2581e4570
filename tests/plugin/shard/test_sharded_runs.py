"""Sharded runs for real: N shards as separate pytest processes, each in its own copy of the
project and its own network namespace (as separate hosts would be), merged into one proof that
says what an unsharded run of the same suite says; and the merge's checks, tried to be broken."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.plugin.attest.conftest import statement_of

pytestmark = pytest.mark.integration

SUITE = {
    "test_fast.py": """
import pytest

@pytest.mark.parametrize("i", range(12))
def test_numbers(i):
    assert i != 5, "five fails on purpose"

def test_skipped():
    pytest.skip("not here")

def test_warns():
    import warnings
    warnings.warn(UserWarning("a warning"))
""",
    "test_rooms.py": """
def test_echo(cleanroom):
    cleanroom.run("echo hello > out.txt").assert_success()

def test_reads_back(cleanroom):
    cleanroom.run("echo again > out.txt && cat out.txt").assert_success()
""",
    # Which network namespace each "host" ran in.
    "conftest.py": """
import os, pathlib

def pytest_sessionstart(session):
    lines = pathlib.Path("/proc/self/net/dev").read_text().splitlines()[2:]
    interfaces = sorted(line.split(":")[0].strip() for line in lines)
    namespace = os.readlink("/proc/self/ns/net")
    pathlib.Path("netns.txt").write_text(namespace + " " + ",".join(interfaces))
""",
    "test_more.py": """
import pytest

@pytest.mark.parametrize("name", ["a", "b", "c", "d", "e", "f"])
def test_names(name):
    assert name.isalpha()
""",
}
SHARDS = 3


def pytest_in(cwd: Path, *args: str, env: dict[str, str] | None = None, netns: bool = False):  # type: ignore[no-untyped-def]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_CORE"))}
    base = {k: v for k, v in base.items() if k not in ("CLEANROOM_SHARD_RUN", "GITHUB_RUN_ID")}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args]
    if netns:
        command = ["unshare", "--net", "--", *command]
    return subprocess.run(
        command,
        cwd=cwd,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def write_suite(root: Path) -> Path:
    root.mkdir(parents=True)
    for name, text in SUITE.items():
        (root / name).write_text(text)
    return root


def outcomes(directory: Path) -> dict[str, list[str]]:
    predicate = statement_of(directory / "run.intoto.json")["predicate"]
    return {k: predicate[k] for k in ("passedTests", "warnedTests", "failedTests")}


def junit_cases(path: Path) -> dict[str, str]:
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        kind = next((child.tag for child in case), "passed")
        cases[f"{case.get('classname')}::{case.get('name')}"] = kind
    return cases


def ggen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ggen_cli", "attest", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def shard_run(
    work: Path, index: int, run: str, durations: Path, *, netns: bool = True, name: str = ""
) -> Path:
    """Shard ``index`` of SHARDS in its own copy of the suite; its attestation directory."""
    copy = work / (name or f"host{index}")
    shutil.copytree(work / "suite", copy)
    shutil.copyfile(durations, copy / ".cleanroom-durations.json")
    done = pytest_in(
        copy,
        f"--cleanroom-shard={index}/{SHARDS}",
        "--cleanroom-attest=attest",
        "--cleanroom-report=attest/report.json",
        "--junitxml=attest/junit.xml",
        env={"CLEANROOM_SHARD_RUN": run},
        netns=netns,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert f"cleanroom shard {index}/{SHARDS} (option)" in done.stdout
    return copy / "attest"


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One unsharded run, then three shards on three "hosts", with the same durations."""
    require(shutil.which("bwrap") is not None, "bubblewrap (apt-get install bubblewrap)")
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    require(probe.returncode == 0, f"unshare --net (root, util-linux): {probe.stderr!r}")
    work = tmp_path_factory.mktemp("sharded")
    suite = write_suite(work / "suite")
    whole = pytest_in(
        suite,
        "--cleanroom-attest=attest",
        "--junitxml=attest/junit.xml",
        "--cleanroom-shard-durations=.cleanroom-durations.json",
    )
    assert whole.returncode == 1, whole.stdout + whole.stderr  # test_numbers[5] fails
    durations = work / "durations.json"
    shutil.move(suite / ".cleanroom-durations.json", durations)
    shutil.move(suite / "attest", work / "unsharded")
    shards = [shard_run(work, k, "run-1", durations) for k in range(1, SHARDS + 1)]
    return {"work": work, "durations": durations, "shards": shards}


@pytest.fixture(scope="module")
def stranger(sharded: dict[str, Any]) -> Path:
    """Shard 2 of another run of the same suite."""
    return shard_run(sharded["work"], 2, "run-2", sharded["durations"], netns=False, name="other")


@pytest.fixture(scope="module")
def skewed(sharded: dict[str, Any]) -> Path:
    """Shard 3 of the same run, split with other durations than shards 1 and 2 used."""
    work = sharded["work"]
    path = work / "skewed.json"
    recorded = json.loads(sharded["durations"].read_text())
    path.write_text(json.dumps({n: (30.0 if "test_more" in n else d) for n, d in recorded.items()}))
    return shard_run(work, 3, "run-1", path, netns=False, name="skewed-host")


def test_each_shard_ran_on_its_own_host(sharded: dict[str, Any]) -> None:
    # A namespace's inode number can be reused once it is gone, so each shard's is compared with
    # the host's only, and its interfaces (a new network namespace has nothing but loopback).
    seen = [(shard.parent / "netns.txt").read_text().split() for shard in sharded["shards"]]
    here = os.readlink("/proc/self/ns/net")
    assert all(namespace != here and interfaces == "lo" for namespace, interfaces in seen)


def test_merged_shards_say_what_the_unsharded_run_says(sharded: dict[str, Any]) -> None:
    work = sharded["work"]
    merged = work / "merged"
    done = ggen("merge", *map(str, sharded["shards"]), "--out", str(merged), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    verified = ggen("verify", str(merged), "--json")
    assert verified.returncode == 0, verified.stdout
    assert outcomes(merged) == outcomes(work / "unsharded")
    assert outcomes(merged)["failedTests"] == ["test_fast.py::test_numbers[5]"]
    assert junit_cases(merged / "junit.xml") == junit_cases(work / "unsharded" / "junit.xml")
    report = json.loads((merged / "report.json").read_text())
    assert [r["shard"]["index"] for r in report["run"]["shards"]] == [1, 2, 3]
    assert {c["nodeid"] for c in report["commands"]} == {
        "test_rooms.py::test_echo",
        "test_rooms.py::test_reads_back",
    }
    durations = json.loads((merged / "durations.json").read_text())  # the next run's split
    assert set(durations) == set(json.loads(sharded["durations"].read_text()))
    record = statement_of(merged / "run.intoto.json")["predicate"]["configuration"][0]
    annotations = record["annotations"]
    assert record["name"] == "cleanroom-sharded-run"
    assert (annotations["run"], annotations["total"]) == ("run-1", SHARDS)
    assert len(annotations["policyDigests"]) == 1
    assert sum(s["selectedTests"] for s in annotations["shards"]) == annotations["collectedTests"]


def test_merge_refuses_a_missing_or_duplicated_shard(sharded: dict[str, Any]) -> None:
    first, second, _ = sharded["shards"]
    missing = ggen("merge", str(first), str(second), "--out", str(sharded["work"] / "m1"))
    assert missing.returncode == 1
    assert "missing shard: 3/3" in missing.stderr
    twice = ggen("merge", str(first), str(first), str(second), "--out", str(sharded["work"] / "m2"))
    assert twice.returncode == 1
    assert "shard 1/3 duplicated" in twice.stderr
    assert not (sharded["work"] / "m1").exists()
    assert not (sharded["work"] / "m2").exists()


def test_merge_refuses_a_shard_from_another_run(sharded: dict[str, Any], stranger: Path) -> None:
    work = sharded["work"]
    first, _, third = sharded["shards"]
    done = ggen("merge", str(first), str(stranger), str(third), "--out", str(work / "m3"))
    assert done.returncode == 1
    assert "a shard from another run: its run id ('run-2')" in done.stderr


def test_shards_split_with_different_durations_count_a_test_twice(
    sharded: dict[str, Any], skewed: Path
) -> None:
    work = sharded["work"]
    first, second, _ = sharded["shards"]
    done = ggen("merge", str(first), str(second), str(skewed), "--out", str(work / "m4"))
    assert done.returncode == 1
    assert "counted twice" in done.stderr
    assert "its durations file" in done.stderr


def tamper_copy(sharded: dict[str, Any], name: str) -> Path:
    merged = sharded["work"] / name
    done = ggen("merge", *map(str, sharded["shards"]), "--out", str(merged))
    assert done.returncode == 0, done.stderr
    return merged


def test_verify_detects_a_shard_removed_from_the_merged_proof(sharded: dict[str, Any]) -> None:
    merged = tamper_copy(sharded, "removed")
    shutil.rmtree(merged / "shards" / "shard-2-of-3")
    done = ggen("verify", str(merged))
    assert done.returncode == 1
    assert "missing shard (listed by the merged statement)" in done.stderr
    assert "missing shard: 2/3" in done.stderr


def test_verify_detects_a_duplicated_shard(sharded: dict[str, Any]) -> None:
    merged = tamper_copy(sharded, "duplicated")
    shutil.copytree(merged / "shards" / "shard-1-of-3", merged / "shards" / "shard-1-of-3-copy")
    done = ggen("verify", str(merged))
    assert done.returncode == 1
    assert "a shard the merged statement does not list" in done.stderr


def test_verify_detects_a_shard_swapped_for_another_runs(sharded: dict[str, Any]) -> None:
    merged = tamper_copy(sharded, "swapped")
    stranger = sharded["work"] / "other-run" / "attest"
    if not stranger.is_dir():
        stranger = shard_run(
            sharded["work"], 2, "run-2", sharded["durations"], netns=False, name="other-run"
        )
    target = merged / "shards" / "shard-2-of-3"
    shutil.rmtree(target)
    shutil.copytree(stranger, target)
    done = ggen("verify", str(merged))
    assert done.returncode == 1
    assert "not the shard statement that was merged" in done.stderr
    assert "a shard from another run" in done.stderr


def test_verify_detects_a_test_counted_twice(sharded: dict[str, Any], skewed: Path) -> None:
    merged = tamper_copy(sharded, "twice")
    target = merged / "shards" / "shard-3-of-3"
    shutil.rmtree(target)
    shutil.copytree(skewed, target)
    done = ggen("verify", str(merged))
    assert done.returncode == 1
    assert "counted twice" in done.stderr
