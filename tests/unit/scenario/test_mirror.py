"""The repeat check's copy of the workspace, kept equal to it by copying only what changed:
``Mirror`` on its own, then the checker through the real engine."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.scenarios.mirror import Mirror
from pytest_cleanroom.scenarios.repeat import RepeatCheckError
from pytest_cleanroom.scenarios.replay import attach_repeat_checker
from pytest_cleanroom.scenarios.treediff import scan

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


def mirror_of(source: Path) -> Mirror:
    taken = time.time_ns()
    return Mirror.create(source, source.parent / "copy", scan(source), taken)


def test_catch_up_copies_what_was_added_removed_and_changed(source: Path) -> None:
    mirror = mirror_of(source)
    assert state(mirror.path) == state(source)
    (source / "new" / "deep").mkdir(parents=True)
    (source / "new" / "deep" / "c.txt").write_text("gamma\n")
    (source / "edit.txt").write_text("4321\n")  # same size
    (source / "mode.sh").chmod(0o755)
    (source / "gone" / "b.txt").unlink()
    (source / "gone").rmdir()
    (source / "becomes-dir").unlink()
    (source / "becomes-dir").mkdir()
    (source / "link").unlink()
    (source / "link").symlink_to("edit.txt")
    os.utime(source / "keep" / "a.txt", ns=(1, 10**18))  # times alone count too

    assert mirror.catch_up(scan(source))
    assert state(mirror.path) == state(source)
    assert mirror.entries == scan(mirror.path)


def test_a_rewrite_whose_stat_did_not_move_is_copied_while_racy(source: Path) -> None:
    mirror = mirror_of(source)
    stale = dict(mirror.source_entries)  # as if the rewrite below had left the stat as it was
    (source / "edit.txt").write_text("9999\n")
    ctime = stale["edit.txt"][4]  # when the file had last changed before it was read

    mirror.source_taken_ns = ctime + 10**9 * 5  # long settled: the unchanged stat is trusted
    assert mirror.catch_up(stale)
    assert (mirror.path / "edit.txt").read_text() == "1234\n"

    mirror.source_taken_ns = ctime  # read within the racy window: copied whatever its stat
    assert mirror.catch_up(stale)
    assert (mirror.path / "edit.txt").read_text() == "9999\n"


def test_hard_links_and_special_files_need_a_fresh_copy(source: Path) -> None:
    mirror = mirror_of(source)
    os.link(source / "edit.txt", source / "hard.txt")
    assert not mirror.catch_up(scan(source))

    mirror = Mirror.create(source, source.parent / "copy2", scan(source), time.time_ns())
    os.mkfifo(source / "pipe")
    assert not mirror.catch_up(scan(source))


@pytest.mark.integration
def test_the_replay_sees_what_the_test_changed_between_commands(tmp_path: Path) -> None:
    room = Cleanroom(tmp_path / "ws", policy="standard", seed=7)
    checker = attach_repeat_checker(room)
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
        assert not checker.mismatches
    finally:
        checker.close()
        room.close()


@pytest.mark.integration
def test_after_a_difference_the_next_command_starts_from_a_fresh_copy(tmp_path: Path) -> None:
    room = Cleanroom(tmp_path / "ws", policy="standard", seed=7)
    checker = attach_repeat_checker(room)
    try:
        with pytest.raises(RepeatCheckError, match=r"noise\.txt"):
            room.run("head -c 8 /dev/urandom > noise.txt")
        # The copy now holds other noise: the replay must start from the workspace's instead.
        room.run("od -An -tx1 noise.txt").assert_success()
        assert len(checker.mismatches) == 1
    finally:
        checker.close()
        room.close()
