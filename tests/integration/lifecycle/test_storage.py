"""``ggen lifecycle`` on a real read-only or full file system: one StorageError naming the file
and the fix (in ``--json`` too), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import remount_read_only, small_tmpfs
from tests.unit.lifecycle.helpers import write_project

from .conftest import ggen

pytestmark = pytest.mark.integration

BUILD = """
[lifecycle.build]
command = "yes 0123456789 | head -c 300000; echo done > out.txt"
outputs = ["out.txt"]
cache = true
"""


def assert_clean_error(stderr: str, *fragments: str) -> None:
    assert "Traceback" not in stderr
    (line,) = [ln for ln in stderr.splitlines() if ln.startswith("ggen lifecycle: error:")]
    for fragment in fragments:
        assert fragment in line


def test_a_read_only_project(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        root = write_project(disk / "project", BUILD)
        remount_read_only(disk)
        done = ggen(root, "run", "build")
        assert done.returncode == 1
        assert_clean_error(
            done.stderr, f"cannot write {root / '.ggen'}", "Read-only file system", "writable copy"
        )
        as_json = ggen(root, "run", "build", "--json")
        error = json.loads(as_json.stdout)["error"]
        assert error["type"] == "StorageError"
        assert error["file"] == str(root / ".ggen")
        assert "Traceback" not in as_json.stderr
        update = ggen(root, "readiness-update", "tests", "needs-review", "--json")
        assert json.loads(update.stdout)["error"]["type"] == "StorageError"
        for read_only_command in (["state"], ["list"], ["run", "build", "--dry-run"]):
            shown = ggen(root, *read_only_command)
            assert shown.returncode == 0, shown.stderr
            assert "Traceback" not in shown.stderr


def test_a_disk_that_fills_up_during_a_task(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "128k") as disk:
        root = write_project(disk / "project", BUILD)
        done = ggen(root, "run", "build", "--json")
        summary = json.loads(done.stdout)
        assert done.returncode == 1
        (task,) = summary["tasks"]
        assert task["status"] == "failed"
        assert task["error_type"] == "StorageError"
        assert task["error"].startswith(f"cannot write {root / '.ggen/logs'}")
        assert "No space left on device; free some space there" in task["error"]
        assert "Traceback" not in done.stderr
        # The full disk now refuses the next run up front, with the same kind of error.
        again = ggen(root, "run", "build")
        assert again.returncode == 1
        assert_clean_error(again.stderr, "No space left on device", "ggen lifecycle clean")
        assert not (root / "out.txt").exists()
