"""Host path lookups that tell later whether any directory they read has changed."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pytest_cleanroom.backends.namespace.lookups import Lookups

#: Longer than the finest time stamp granularity lookups.py allows for.
SETTLE = 0.05


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``d/`` with a file, a link to it, a link to ``..``, a dangling link and a loop."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "file").write_text("x")
    (tmp_path / "d" / "to-file").symlink_to("file")
    (tmp_path / "d" / "up").symlink_to("..")
    (tmp_path / "d" / "dangling").symlink_to("nowhere")
    (tmp_path / "d" / "loop").symlink_to("loop")
    (tmp_path / "other").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "name",
    [
        "d/file",
        "d/to-file",
        "d/up/d/file",
        "d/up/../x",
        "d/dangling",
        "d/loop/x",
        "d/missing/../file",
    ],
)
def test_resolve_agrees_with_realpath_and_stat(tree: Path, name: str) -> None:
    path = f"{tree}/{name}"
    real, mode = Lookups().resolve(path)
    assert real == os.path.realpath(path)
    assert (mode is None) == (not os.path.exists(path))


def settled_witness(tree: Path, *paths: str) -> Lookups:
    time.sleep(SETTLE)  # older than the clock's granularity: a later change must show
    lookups = Lookups()
    for path in paths:
        lookups.resolve(f"{tree}/{path}")
    return lookups


def test_a_witness_holds_while_nothing_changes(tree: Path) -> None:
    witness = settled_witness(tree, "d/up/d/to-file", "d/new").witness()
    assert witness.holds()
    (tree / "other" / "file").write_text("x")  # not a directory the lookups read
    (tree / "d" / "file").write_text("changed")  # a file's content is no entry
    assert witness.holds()


def test_a_new_entry_breaks_the_witness(tree: Path) -> None:
    witness = settled_witness(tree, "d/new").witness()
    (tree / "d" / "new").write_text("x")
    assert not witness.holds()


def test_a_link_renamed_over_breaks_the_witness(tree: Path) -> None:
    witness = settled_witness(tree, "d/up/d/file").witness()
    (tree / "d" / "up+").symlink_to(".")
    os.replace(tree / "d" / "up+", tree / "d" / "up")
    assert not witness.holds()


def test_a_change_whose_time_is_put_back_still_breaks_the_witness(tree: Path) -> None:
    """Its change time moves with any change, that of its time stamps too."""
    directory = tree / "d"
    before = directory.stat()
    witness = settled_witness(tree, "d/new").witness()
    (directory / "new").write_text("x")
    os.utime(directory, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert not witness.holds()


def test_a_directory_changed_within_the_clock_granularity_proves_nothing(tree: Path) -> None:
    """A directory changed just before the lookups could change again in the same tick of
    the clock without a new time stamp: its witness never holds."""
    lookups = Lookups()
    (tree / "d" / "fresh").write_text("x")
    lookups.resolve(f"{tree}/d/file")
    assert not lookups.witness().holds()
