"""The repeat check's copy of the workspace, kept equal to it by copying only what changed:
``Mirror`` on its own, then the checker through the real engine."""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.repeat.checker import RepeatCheckError
from pytest_cleanroom.repeat.mirror import Mirror
from pytest_cleanroom.repeat.replay import attach_repeat_checker
from pytest_cleanroom.repeat.tree import Tree, changes_since
from pytest_cleanroom.repeat.treediff import scan, stat_changes
from tests.conftest import require_binary

State = dict[str, tuple[str, int, bytes, int]]


def state(root: Path) -> State:
    """Every entry's type, mode, content (or link target) and mtime, and the root's mtime."""
    found: State = {"": ("dir", 0, b"", os.lstat(root).st_mtime_ns)}
    for rel in scan(root):
        path = root / rel
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            kind, data = "dir", b""
        elif stat.S_ISLNK(st.st_mode):
            kind, data = "link", os.readlink(path).encode()
        else:
            kind, data = "file", path.read_bytes()
        found[rel] = (kind, stat.S_IMODE(st.st_mode), data, st.st_mtime_ns)
    return found


@pytest.fixture
def source(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "keep").mkdir(parents=True)
    (root / "gone").mkdir()
    (root / "keep" / "a.txt").write_text("alpha\n")
    (root / "gone" / "b.txt").write_text("beta\n")
    (root / "edit.txt").write_text("1234\n")
    (root / "mode.sh").write_text("#!/bin/sh\n")
    (root / "becomes-dir").write_text("file\n")
    (root / "link").symlink_to("keep/a.txt")
    return root


def mirror_of(source: Path, *, watched: bool = True) -> Mirror:
    tree = Tree(source)
    tree.read()
    if not watched:
        tree.close()  # no inotify: changes are found by stat
    return Mirror.create(tree, source.parent / f"copy-{time.time_ns()}")


def change(source: Path) -> None:
    (source / "new" / "deep").mkdir(parents=True)
    (source / "new" / "deep" / "c.txt").write_text("gamma\n")
    (source / "edit.txt").write_text("4321\n")  # same size, within the same clock tick
    (source / "mode.sh").chmod(0o755)
    (source / "gone" / "b.txt").unlink()
    (source / "gone").rmdir()
    (source / "becomes-dir").unlink()
    (source / "becomes-dir").mkdir()
    (source / "link").unlink()
    (source / "link").symlink_to("edit.txt")
    os.utime(source / "keep" / "a.txt", ns=(1, 10**18))  # times alone count too


@pytest.mark.parametrize("watched", [True, False], ids=["inotify", "stat"])
def test_catch_up_copies_what_was_added_removed_and_changed(source: Path, watched: bool) -> None:
    mirror = mirror_of(source, watched=watched)
    assert state(mirror.path) == state(source)
    change(source)
    changed = changes_since(mirror.source, mirror.source.taken_ns)
    assert {"edit.txt", "new/deep/c.txt", "gone", "gone/b.txt", "keep/a.txt"} <= changed
    assert mirror.catch_up(changed)
    assert state(mirror.path) == state(source)
    assert mirror.entries == scan(mirror.path)
    assert mirror.source.entries == scan(source)


def test_events_report_exactly_what_changed(source: Path) -> None:
    tree = Tree(source)
    assert tree.read() is None  # the first reading scans
    assert tree.watched
    assert tree.read() == set()
    (source / "edit.txt").write_text("1235\n")  # same size, same tick: still reported
    (source / "d" / "e").mkdir(parents=True)  # made and filled before the watch reaches it
    (source / "d" / "e" / "f.txt").write_text("f\n")
    assert tree.read() == {"edit.txt", "d", "d/e", "d/e/f.txt"}
    shutil.rmtree(source / "d")
    assert tree.read() == {"d", "d/e", "d/e/f.txt"}
    assert tree.entries == scan(source)


def test_a_renamed_directory_or_a_hard_link_makes_the_tree_scan(source: Path) -> None:
    tree = Tree(source)
    tree.read()
    (source / "keep").rename(source / "kept")
    assert tree.read() is None  # the watches' paths would be stale: scanned
    assert tree.entries == scan(source)
    assert tree.watched  # and watched afresh
    os.link(source / "edit.txt", source / "hard.txt")
    assert tree.read() == {"hard.txt"}  # the other name's link count moved unreported:
    assert not tree.watched  # nor would a write through one name be reported for the other
    assert tree.read() is None


def test_stat_changes_include_racy_entries() -> None:
    key = (stat.S_IFREG | 0o644, 1, 5, 0, 7 * 10**9 + 5, 1)
    assert stat_changes({"f": key}, {"f": key}, since_ns=7 * 10**9 + 6) == {"f"}
    assert stat_changes({"f": key}, {"f": key}, since_ns=9 * 10**9) == set()
    moved = (*key[:4], key[4] + 1, 1)
    assert stat_changes({"f": key}, {"f": moved, "g": key}, since_ns=9 * 10**9) == {"f", "g"}


def test_hard_links_and_special_files_need_a_fresh_copy(source: Path) -> None:
    mirror = mirror_of(source)
    os.link(source / "edit.txt", source / "hard.txt")
    assert not mirror.catch_up(changes_since(mirror.source, mirror.source.taken_ns))

    mirror = mirror_of(source)
    os.mkfifo(source / "pipe")
    assert not mirror.catch_up(changes_since(mirror.source, mirror.source.taken_ns))


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["bwrap", "unshare"])
def test_the_replay_sees_what_the_test_changed_between_commands(
    tmp_path: Path, backend: str
) -> None:
    require_binary(backend, "apt-get install bubblewrap util-linux")
    room = Cleanroom(tmp_path / "ws", policy="standard", seed=7, backend=backend)
    checker = attach_repeat_checker(room, copy_on_write=False)
    try:
        (room.workspace.root / "in.txt").write_text("one\n")
        room.run("cat in.txt; echo out > out.txt").assert_stdout_contains("one")
        # Same size, right after the command (within the racy window), then a removal.
        (room.workspace.root / "in.txt").write_text("two\n")
        room.run("cat in.txt; ls").assert_stdout_contains("two")
        (room.workspace.root / "out.txt").unlink()
        assert "out.txt" not in room.run("ls").stdout
        scratch = checker._scratch
        assert scratch is not None
        copy = scratch / room.workspace.root.name
        assert state(copy) == state(room.workspace.root)
        assert checker.units_checked == 3
        assert checker._tree is not None
        assert checker._tree.watched  # the changes were known from inotify, not by scanning
        assert not checker.mismatches
    finally:
        checker.close()
        room.close()


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["bwrap", "unshare"])
def test_after_a_difference_the_next_command_starts_from_a_fresh_copy(
    tmp_path: Path, backend: str
) -> None:
    require_binary(backend, "apt-get install bubblewrap util-linux")
    room = Cleanroom(tmp_path / "ws", policy="standard", seed=7, backend=backend)
    checker = attach_repeat_checker(room, copy_on_write=False)
    try:
        with pytest.raises(RepeatCheckError, match=r"noise\.txt"):
            room.run("head -c 8 /dev/urandom > noise.txt")
        # The copy now holds other noise: the replay must start from the workspace's instead.
        room.run("od -An -tx1 noise.txt").assert_success()
        assert len(checker.mismatches) == 1
    finally:
        checker.close()
        room.close()
