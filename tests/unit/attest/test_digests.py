"""Workspace digests: which files changed since the cleanroom was created."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from pytest_cleanroom.attest.digests import RACY_WINDOW_NS, compare, take_snapshot
from pytest_cleanroom.workspace import Workspace


@pytest.fixture(params=[False, True], ids=["walk", "inotify"])
def watch(request: pytest.FixtureRequest) -> bool:
    """Compare by walking the workspace, or from the events of a watch set by the snapshot."""
    return bool(request.param)


def _settle() -> None:
    """Let file timestamps age past the racy window (not a timing assertion)."""
    time.sleep(RACY_WINDOW_NS / 1e9 + 0.05)


def test_added_changed_removed_and_unchanged(tmp_path: Path, watch: bool) -> None:
    (tmp_path / "keep.txt").write_text("same")
    (tmp_path / "edit.txt").write_text("before")
    (tmp_path / "gone.txt").write_text("bye")
    (tmp_path / "sub").mkdir()
    before = take_snapshot(tmp_path, watch=watch)
    (tmp_path / "edit.txt").write_text("after!")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "sub" / "new.bin").write_bytes(b"\0\1")
    os.symlink("keep.txt", tmp_path / "link")
    changes = compare(before)
    assert sorted(changes.outputs) == ["edit.txt", "link", "sub/new.bin"]
    assert changes.removed == ("gone.txt",)
    assert sorted(changes.inputs) == ["edit.txt", "gone.txt", "keep.txt"]
    assert sorted(changes.after) == ["edit.txt", "keep.txt", "link", "sub/new.bin"]


def test_digests_and_tree_digest_agree_with_the_workspace(tmp_path: Path, watch: bool) -> None:
    ws = Workspace(tmp_path)
    ws.write("a/b.txt", "x")
    ws.write("c.bin", b"\xff" * 5000)
    os.symlink("a/b.txt", tmp_path / "d")
    before = take_snapshot(tmp_path, watch=watch)
    assert before.digests() == ws.file_digests()
    ws.write("e.txt", "new")
    changes = compare(before)
    assert changes.after == ws.file_digests()
    assert changes.tree_digest() == ws.digest()


def test_same_size_rewrite_with_restored_mtime_of_a_settled_file_is_seen(
    tmp_path: Path, watch: bool
) -> None:
    target = tmp_path / "data.txt"
    target.write_text("aaaa")
    _settle()
    before = take_snapshot(tmp_path, watch=watch)
    assert not before.files["data.txt"].racy
    st = target.stat()
    target.write_text("bbbb")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # hide the change from mtime and size
    changes = compare(before)
    assert list(changes.outputs) == ["data.txt"]
    assert changes.outputs["data.txt"] != before.files["data.txt"].digest


def test_a_racy_file_is_rehashed_even_when_its_stat_did_not_move(
    tmp_path: Path, watch: bool
) -> None:
    target = tmp_path / "fresh.txt"
    target.write_text("aaaa")
    before = take_snapshot(tmp_path, watch=watch)
    assert before.files["fresh.txt"].racy  # written just now, within the window
    st = target.stat()
    target.write_text("bbbb")
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert "fresh.txt" in compare(before).outputs


def test_an_untouched_workspace_has_no_outputs(tmp_path: Path, watch: bool) -> None:
    (tmp_path / "f").write_text("1")
    before = take_snapshot(tmp_path, watch=watch)
    changes = compare(before)
    assert changes.outputs == {}
    assert changes.removed == ()


def test_sockets_and_fifos_are_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "f").write_text("1")
    assert sorted(take_snapshot(tmp_path).files) == ["f"]


def test_digests_of_empty_small_and_multi_chunk_files(tmp_path: Path) -> None:
    import hashlib

    contents = {"empty": b"", "small": b"abc", "big": os.urandom(3 * (1 << 20) + 17)}
    for name, data in contents.items():
        (tmp_path / name).write_bytes(data)
    digests = take_snapshot(tmp_path).digests()
    assert digests == {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}


def test_with_a_watch_only_reported_entries_are_read(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    (tmp_path / "sub" / "deep" / "a.txt").write_text("a")
    (tmp_path / "sub" / "b.txt").write_text("b")
    (tmp_path / "was-file").write_text("f")
    (tmp_path / "keep.txt").write_text("k")
    before = take_snapshot(tmp_path, watch=True)
    assert before.tree is not None
    assert before.tree.watched
    shutil.rmtree(tmp_path / "sub")
    (tmp_path / "was-file").unlink()
    (tmp_path / "was-file").mkdir()
    (tmp_path / "was-file" / "inner.txt").write_text("i")
    changes = compare(before)
    assert before.tree.watched  # the events were used, not a walk
    assert changes.removed == ("sub/b.txt", "sub/deep/a.txt", "was-file")
    assert list(changes.outputs) == ["was-file/inner.txt"]
    assert changes.after == Workspace(tmp_path).file_digests()
    before.close()
    assert not before.tree.watched
