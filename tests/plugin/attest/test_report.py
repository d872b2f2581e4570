"""--cleanroom-report=FILE.json: every sandboxed command of the run, with its figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest_plugins = ("pytester",)

TESTS = """
import pytest

@pytest.fixture
def built(cleanroom):
    cleanroom.run(["sh", "-c", "echo setup > made-in-setup.txt"]).assert_success()
    yield
    cleanroom.run(["true"])

def test_two_commands(cleanroom, built):
    cleanroom.run(["sh", "-c", "exit 4"])
    cleanroom.run(["sh", "-c", "head -c 1000000 /dev/zero | wc -c"]).assert_success()

@pytest.mark.cleanroom(policy="strict")
def test_strict(cleanroom):
    cleanroom.run(["sleep", "5"], timeout=0.5)

def test_plain():
    pass
"""


def test_report_lists_every_command(pytester: pytest.Pytester, sandbox: None) -> None:
    pytester.makepyfile(test_cmds=TESTS)
    result = pytester.runpytest_subprocess("--cleanroom-report=out/report.json")
    result.assert_outcomes(passed=3)
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    assert report["version"] == 1
    commands = report["commands"]
    assert [(c["nodeid"].split("::")[1], c["when"], c["command"]) for c in commands] == [
        ("test_strict", "call", "sleep 5"),
        ("test_two_commands", "setup", "sh -c 'echo setup > made-in-setup.txt'"),
        ("test_two_commands", "call", "sh -c 'exit 4'"),
        ("test_two_commands", "call", "sh -c 'head -c 1000000 /dev/zero | wc -c'"),
        ("test_two_commands", "teardown", "true"),
    ]
    strict, setup, exit4, pipe, _ = commands
    assert strict["policy"] == "strict"
    assert strict["timed_out"] is True
    assert strict["limit_exceeded"] == "timeout"
    assert setup["policy"] == "standard"
    assert exit4["exit_code"] == 4
    for command in commands:
        assert command["backend"] in ("bwrap", "unshare")
        assert command["policy_digest"].startswith("sha256:")
        assert command["duration"] > 0
        assert isinstance(command["seed"], int)
        assert set(command) >= {"peak_memory", "cpu_time", "exit_code"}
    assert pipe["peak_memory"] is None or pipe["peak_memory"] > 0
    summary = report["summary"]
    assert summary["commands"] == 5
    assert summary["failed_commands"] == 2
    assert summary["tests"] == 2
    assert report["attestations"] is None
    result.stdout.fnmatch_lines(["cleanroom report: */out/report.json (5 sandboxed commands)"])


def test_importing_the_plugin_stays_cheap() -> None:
    code = (
        "import sys, pytest_cleanroom.attest.plugin\n"
        "heavy = [m for m in ('cryptography', 'coverage', 'pytest_cleanroom.attest.keys') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_a_report_path_that_is_a_device_is_written_through_not_replaced(
    pytester: pytest.Pytester, sandbox: None
) -> None:
    """--cleanroom-report=/dev/null once replaced the host's /dev/null with a regular file: here
    on a real character device with /dev/null's numbers, made in the test's own directory."""
    import os
    import stat

    from tests.conftest import require

    require(os.geteuid() == 0, "root, to mknod a character device")
    node = pytester.path / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    before = node.lstat()
    pytester.makepyfile(test_one="def test_one(cleanroom):\n    cleanroom.run(['true'])\n")
    result = pytester.runpytest_subprocess(f"--cleanroom-report={node}")
    result.assert_outcomes(passed=1)
    after = node.lstat()
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert not [p.name for p in pytester.path.iterdir() if p.name.startswith(".null")]


def test_a_report_path_that_links_out_of_its_directory_is_a_usage_error(
    pytester: pytest.Pytester, sandbox: None
) -> None:
    victim = pytester.path / "victim.txt"
    victim.write_text("precious")
    (pytester.path / "out").mkdir()
    (pytester.path / "out" / "report.json").symlink_to(victim)
    pytester.makepyfile(test_one="def test_one(cleanroom):\n    cleanroom.run(['true'])\n")
    result = pytester.runpytest_subprocess("--cleanroom-report=out/report.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cleanroom-report*symbolic link*out of its directory*"])
    assert victim.read_text() == "precious"
