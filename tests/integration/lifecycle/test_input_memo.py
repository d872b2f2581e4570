"""A cache hit reuses input hashes by file identity (size, mtime, ctime, inode) without reading
the files, yet an edit that keeps a file's size and mtime (``touch -d`` back) is never a hit."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from ggen_lifecycle.files import HashMemo
from tests.unit.lifecycle.helpers import write_project

from .conftest import ggen

pytestmark = pytest.mark.integration

BUILD = """
[lifecycle.build]
command = "mkdir -p out && cat src/a.txt > out/copy.txt"
inputs = ["src/**"]
outputs = ["out/**"]
"""
OLD = "2020-01-01 00:00:00"


def run_build(root: Path) -> tuple[str, str]:
    """(the task's cache use, the output it left)."""
    done = ggen(root, "run", "build", "--json", "-q")
    assert done.returncode == 0, done.stderr
    (task,) = json.loads(done.stdout)["tasks"]
    return task["cache"], (root / "out" / "copy.txt").read_text()


def test_an_edit_that_keeps_size_and_mtime_is_not_a_hit(tmp_path: Path) -> None:
    root = write_project(tmp_path, BUILD, {"src/a.txt": "aaaa\n"})
    source = root / "src" / "a.txt"
    subprocess.run(["touch", "-d", OLD, str(source)], check=True)
    # The memo remembers only files unchanged for HashMemo.RECENT_NS (ctime included, which no
    # program can set back): wait that long, so that the next run can remember this one.
    time.sleep(HashMemo.RECENT_NS / 1e9 + 0.2)
    assert run_build(root) == ("miss", "aaaa\n")
    memo = json.loads((root / ".ggen" / "hashes.json").read_text())
    assert str(source) in memo  # the hash is reused by identity from now on
    (root / "out" / "copy.txt").unlink()
    assert run_build(root) == ("hit", "aaaa\n")
    before = os.stat(source)
    with open(source, "r+") as handle:  # the same inode, the same size
        handle.write("bbbb\n")
    subprocess.run(["touch", "-d", OLD, str(source)], check=True)
    after = os.stat(source)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    assert run_build(root) == ("miss", "bbbb\n")
