"""The platforms this machine cannot show, in a real machine: the Debian 12 VM of
scripts/test-vm.sh (systemd, cgroup v2, no Docker) boots once as root, once as a user with a
systemd user session (delegation) and once with user namespaces off, and runs the parts of
tests/integration/vm/parts.py in each boot: cgroup v2 and the compiled set-up step, the example
suite under ``locked``, the security suite on bwrap and unshare, the services plugin's servers.

Each part's duration is printed (software emulation is slow: these are the longest tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require
from tests.integration.test_example_suite import EXAMPLE_TESTS
from tests.integration.vm.parts import BOOTS, Outcome, parse

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def boot(name: str, *options: str, capsys: pytest.CaptureFixture[str]) -> dict[str, Outcome]:
    """Boot the VM with ``options`` and run the parts of boot ``name``; their outcomes."""
    require(os.geteuid() == 0, "root, to build and boot the test VM")
    for tool in ("qemu-system-x86_64", "debootstrap", "debugfs"):
        require(shutil.which(tool) is not None, f"{tool} (scripts/setup.sh --vm)")
    done = subprocess.run(
        ["scripts/test-vm.sh", "--timeout", "2400", *options, "--",
         ".venv/bin/python", "-m", "tests.integration.vm.parts", name],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=2700,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
    outcomes = parse(done.stdout)
    with capsys.disabled():
        for outcome in outcomes.values():
            print(f"\n[vm {name}] {outcome.name}: exit {outcome.status} in {outcome.seconds:.0f} s")
    assert list(outcomes) == [part.name for part in BOOTS[name]], done.stdout[-4000:]
    return outcomes


def assert_passed(outcomes: dict[str, Outcome]) -> None:
    failed = {name: o for name, o in outcomes.items() if o.status != 0}
    assert not failed, "\n".join(f"== {n} (exit {o.status}) ==\n{o.output[-3000:]}"
                                 for n, o in failed.items())  # fmt: skip
    for outcome in outcomes.values():
        assert " skipped" not in outcome.output, outcome.output[-3000:]  # CI=true in the VM too


def test_as_root_on_cgroup2(capsys: pytest.CaptureFixture[str]) -> None:
    assert_passed(boot("root", capsys=capsys))


def test_as_a_user_with_a_systemd_session(capsys: pytest.CaptureFixture[str]) -> None:
    assert_passed(boot("user", "--user", "alice", capsys=capsys))


def test_without_user_namespaces_the_main_job_stops_at_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    [refused] = boot("no-userns", "--no-userns", capsys=capsys).values()
    assert refused.status == 1, refused.output[-3000:]
    assert " passed" not in refused.output  # no command ran anywhere
    errors = refused.output.split(" ERROR at setup of ")[1:]
    assert len(errors) == EXAMPLE_TESTS, refused.output[-3000:]
    for error in errors:  # bwrap and unshare each name the sysctl that switched them off
        own = error.split("\n=")[0]  # the last one is followed by pytest's summaries
        assert own.count("user.max_user_namespaces>0") == 2, own
