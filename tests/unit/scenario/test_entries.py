"""apply_changes reads everything before it writes: a failure while staging leaves the target
as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_cleanroom.repeat.entries import apply_changes
from pytest_cleanroom.repeat.treediff import scan


def test_a_failure_while_staging_leaves_the_target_untouched(tmp_path: Path) -> None:
    source, target = tmp_path / "source", tmp_path / "target"
    for root in (source, target):
        (root / "dir").mkdir(parents=True)
        (root / "dir" / "kept.txt").write_text("old\n")
    (source / "dir" / "kept.txt").write_text("new\n")
    (source / "added.txt").write_text("added\n")
    (target / "removed.txt").write_text("here\n")
    before = {rel: (target / rel).read_bytes() for rel in scan(target) if "." in rel}
    missing_staging = tmp_path / "gone" / "staging"  # copying into it fails for real
    with pytest.raises(FileNotFoundError):
        apply_changes(source, target, {"added.txt", "dir/kept.txt", "removed.txt"}, missing_staging)
    assert {rel: (target / rel).read_bytes() for rel in scan(target) if "." in rel} == before


def test_the_changes_are_applied(tmp_path: Path) -> None:
    source, target, staging = tmp_path / "source", tmp_path / "target", tmp_path / "staging"
    for root in (source, target, staging):
        root.mkdir()
    (source / "added.txt").write_text("added\n")
    (target / "removed.txt").write_text("here\n")
    apply_changes(source, target, {"added.txt", "removed.txt"}, staging)
    assert sorted(scan(target)) == ["added.txt"]
    assert (target / "added.txt").read_text() == "added\n"
    assert not list(staging.iterdir())  # moved, not copied twice
