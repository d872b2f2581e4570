"""The workspace is the test's private tree and the only one a sandboxed command can write."""

from __future__ import annotations

import sys
from pathlib import Path

DATA = Path(__file__).parent / "data"


def test_copy_a_fixture_tree_in_and_list_it(cleanroom, workspace):
    workspace.copy_in(DATA / "project", "project")
    assert workspace.files() == ["project/README.txt", "project/words.txt"]

    cleanroom.run("wc -l < project/words.txt > count.txt").assert_success()
    assert workspace.read("count.txt").strip() == "3"


def test_equal_trees_have_equal_digests(cleanroom, workspace):
    workspace.copy_in(DATA / "project", "a")
    cleanroom.run(["cp", "-r", "a", "b"]).assert_success()
    assert workspace.file_digests()["a/words.txt"] == workspace.file_digests()["b/words.txt"]

    before = workspace.digest()
    cleanroom.run(["sh", "-c", "echo changed >> b/words.txt"]).assert_success()
    assert workspace.digest() != before


def test_nothing_outside_the_workspace_is_writable(cleanroom):
    cleanroom.run(["touch", "/usr/local/cleanroom-was-here"]).assert_failure()
    cleanroom.run(["touch", "/etc/cleanroom-was-here"]).assert_failure()
    assert not Path("/usr/local/cleanroom-was-here").exists()
    # The private /tmp is writable, and gone after the command.
    cleanroom.run(["sh", "-c", "echo scratch > /tmp/scratch && cat /tmp/scratch"]).assert_success()


def test_users_data_is_hidden(cleanroom):
    # Nothing of the host's users leaks into /root or /home: at most the way to the Python that
    # runs these tests, when it is installed there (pyenv, uv), read-only.
    result = cleanroom.run(["find", "/root", "/home", "-mindepth", "1", "-maxdepth", "1"])
    result.assert_success()
    python = {Path(p).resolve() for p in (sys.executable, sys.prefix, sys.base_prefix)}
    way = {str(directory) for path in python for directory in (path, *path.parents)}
    assert set(result.stdout.split()) <= way
