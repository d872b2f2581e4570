"""Host-side helpers do not trust the workspace a sandboxed command wrote: a FIFO never blocks
the digest or a snapshot, a ``.home`` link or file does not break later runs, names that are not
UTF-8 or hold newlines neither crash nor forge lines, and no link is followed out."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pytest_cleanroom import Cleanroom, Workspace
from pytest_cleanroom.attest.digests import take_snapshot
from pytest_cleanroom.host_files import show_name
from pytest_cleanroom.snapshot.tree import workspace_tree

T = TypeVar("T")


def _without_hanging(work: Callable[[], T]) -> T:
    """``work()`` in a thread; a helper that blocks on a FIFO fails the test instead of hanging
    it (the thread is left blocked, as the bug would leave the run)."""
    done: list[T] = []
    worker = threading.Thread(target=lambda: done.append(work()), daemon=True)
    worker.start()
    worker.join(30)
    assert done, f"{work} blocked (a FIFO was opened for reading?)"
    return done[0]


def test_a_fifo_in_the_workspace_blocks_no_helper(room: Cleanroom) -> None:
    room.run(["sh", "-c", "echo hi > a.txt && mkfifo pipe"]).assert_success()
    ws = room.workspace
    digest = _without_hanging(ws.digest)
    assert _without_hanging(ws.file_digests)["pipe"] != _without_hanging(ws.file_digests)["a.txt"]
    text = _without_hanging(lambda: workspace_tree(ws.root))
    assert "special   pipe (fifo)" in text
    snapshot = _without_hanging(lambda: take_snapshot(ws.root))
    assert "a.txt" in snapshot.files
    os.unlink(ws.root / "pipe")
    assert ws.digest() != digest  # the FIFO counted in the digest


def test_a_home_link_or_file_left_by_a_command_does_not_break_later_runs(
    room: Cleanroom, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    room.run(["sh", "-c", f'rm -rf "$HOME" && ln -s {outside} "$HOME"']).assert_success()
    room.run(["sh", "-c", 'touch "$HOME/written" && test -d "$HOME"']).assert_success()
    assert not (outside / "written").exists()
    assert (room.workspace.root / ".home").is_dir()
    assert not (room.workspace.root / ".home").is_symlink()
    room.run(["sh", "-c", 'rm -rf "$HOME" && echo x > "$HOME"']).assert_success()
    room.run(["true"]).assert_success()
    assert (room.workspace.root / ".home").is_dir()


def test_names_that_are_not_utf8_or_hold_newlines(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    forged = "a\nfile 0644 forged.txt (0 bytes, sha256 0)"
    ws.write(forged, "x")
    raw = os.fsencode(ws.root) + b"/bad\xff\xfename"
    with open(raw, "wb") as handle:
        handle.write(b"y")
    os.symlink(b"target\xff\nline", os.fsencode(ws.root) + b"/link")
    digests = ws.file_digests()
    assert set(digests) == {forged, os.fsdecode(b"bad\xff\xfename"), "link"}
    before = ws.digest()
    text = workspace_tree(ws.root)
    lines = [line for line in text.splitlines() if not line.startswith("  ")]  # no content
    assert len(lines) == 3  # one line per entry, whatever the names hold
    assert any(line.startswith('file 0644 "bad\\xff\\xfename" ') for line in lines)
    assert 'link      link -> "target\\xff\\nline"' in lines
    assert not any(line.startswith("file 0644 forged.txt") for line in lines)
    text.encode("utf-8")  # the snapshot can be written as UTF-8
    os.unlink(raw)
    assert ws.digest() != before


def test_shown_names_are_unambiguous() -> None:
    names = ["plain.txt", "with space", '"quoted"', "a\\nb", "a\nb", "x -> y", " lead", "tab\t",
             os.fsdecode(b"\xff"), "\\xff", "del\x7f", "caf\u00e9"]  # fmt: skip
    shown = [show_name(n) for n in names]
    assert len(set(shown)) == len(names)
    assert all("\n" not in s and s.isprintable() for s in shown)
    assert show_name("plain.txt") == "plain.txt"
    assert show_name("caf\u00e9") == "caf\u00e9"
    assert show_name("a\nb") == '"a\\nb"'


def test_digests_do_not_follow_links_out_of_the_workspace(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host data")
    ws = Workspace(tmp_path / "ws")
    os.symlink(secret, ws.root / "peek")
    os.symlink(tmp_path, ws.root / "up")
    digests = ws.file_digests()
    assert set(digests) == {"peek", "up"}
    secret.write_text("changed host data")
    assert ws.file_digests() == digests  # the link's text was hashed, not the host file
    assert "host data" not in workspace_tree(ws.root)
