"""Copying a workspace and finding the first difference between two trees that started equal."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pytest_cleanroom.repeat import treediff
from pytest_cleanroom.repeat.treediff import Baseline, compare_trees, copy_tree
from tests.conftest import require


def describe(one: bytes, two: bytes) -> str:
    return f"{one!r} != {two!r}"


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    one = tmp_path / "one"
    (one / "sub").mkdir(parents=True)
    (one / "sub" / "a.txt").write_text("alpha\n")
    (one / "b.bin").write_bytes(b"\x00\x01")
    (one / "b.bin").chmod(0o600)
    (one / "link").symlink_to("sub/a.txt")
    two = tmp_path / "two"
    copy_tree(one, two)
    return one, two


def diff(one: Path, two: Path, bases: tuple[Baseline, Baseline]) -> str | None:
    return compare_trees(one, bases[0], two, bases[1], describe=describe).difference


def baselines(one: Path, two: Path) -> tuple[Baseline, Baseline]:
    return Baseline.take(one), Baseline.take(two)


def test_copy_keeps_content_modes_and_links(pair: tuple[Path, Path]) -> None:
    one, two = pair
    assert (two / "sub" / "a.txt").read_text() == "alpha\n"
    assert (two / "b.bin").stat().st_mode & 0o777 == 0o600
    assert os.readlink(two / "link") == "sub/a.txt"
    assert diff(one, two, baselines(one, two)) is None


def test_copy_falls_back_to_python_without_cp(
    pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A machine without cp: PATH holds only an empty directory.
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    copy_tree(pair[0], tmp_path / "three")
    assert (tmp_path / "three" / "sub" / "a.txt").read_text() == "alpha\n"
    assert os.readlink(tmp_path / "three" / "link") == "sub/a.txt"


def test_same_change_on_both_sides_is_no_difference(pair: tuple[Path, Path]) -> None:
    one, two = pair
    bases = baselines(one, two)
    for root in pair:
        (root / "sub" / "a.txt").write_text("beta\n")
        (root / "new").mkdir()
    assert diff(one, two, bases) is None


def test_a_same_size_rewrite_right_after_the_baseline_is_caught(
    pair: tuple[Path, Path],
) -> None:
    # Within the racy window the stat may not move: the content must be read.
    one, two = pair
    bases = baselines(one, two)
    (two / "sub" / "a.txt").write_text("ALPHA\n")
    assert diff(one, two, bases) == (
        "file 'sub/a.txt' differs (sha256 "
        + treediff._short(b"alpha\n")
        + " vs "
        + treediff._short(b"ALPHA\n")
        + "): b'alpha\\n' != b'ALPHA\\n'"
    )


def test_settled_files_are_not_read(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = pair
    time.sleep(treediff.RACY_WINDOW_NS / 1e9 + 0.05)
    bases = baselines(one, two)
    read: list[Path] = []
    original = treediff._content

    def spy(path: Path, key: treediff.StatKey) -> bytes:
        read.append(path)
        return original(path, key)

    monkeypatch.setattr(treediff, "_content", spy)  # observes the reads, changes nothing
    (one / "b.bin").write_bytes(b"\x00\x02")
    (two / "b.bin").write_bytes(b"\x00\x02")
    assert diff(one, two, bases) is None
    assert sorted(p.name for p in read) == ["b.bin", "b.bin"]  # only the changed file


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda r: (r / "extra.txt").write_text("x"),
            "file 'extra.txt' exists only after the second run",
        ),
        (lambda r: (r / "b.bin").unlink(), "file 'b.bin' exists only after the first run"),
        (
            lambda r: (r / "b.bin").chmod(0o644),
            "file 'b.bin' has mode 0600 after the first run, 0644 after the second",
        ),
        (
            lambda r: ((r / "link").unlink(), (r / "link").symlink_to("b.bin")),
            "symlink 'link' differs",
        ),
        (
            lambda r: ((r / "b.bin").unlink(), (r / "b.bin").mkdir()),
            "'b.bin' is a file after the first run, a directory after the second",
        ),
        (lambda r: (r / "empty").mkdir(), "directory 'empty' exists only after the second run"),
    ],
)
def test_differences_are_named(pair: tuple[Path, Path], change: object, expected: str) -> None:
    one, two = pair
    bases = baselines(one, two)
    change(two)  # type: ignore[operator]
    found = diff(one, two, bases)
    assert found is not None
    assert found.startswith(expected)


def test_rewrite_of_the_second_tree(pair: tuple[Path, Path]) -> None:
    one, two = pair
    bases = baselines(one, two)
    (one / "where.txt").write_text(f"{one}\n")
    (two / "where.txt").write_text(f"{two}\n")
    assert diff(one, two, bases) is not None
    same = compare_trees(
        one,
        bases[0],
        two,
        bases[1],
        describe=describe,
        rewrite_two=lambda data: data.replace(str(two).encode(), str(one).encode()),
    ).difference
    assert same is None


def test_scratch_goes_to_ram_only_when_roomy_and_not_more_restrictive(tmp_path: Path) -> None:
    from pytest_cleanroom.repeat.treediff import mount_options, scratch_parent

    workspace = tmp_path / "ws"
    shm = Path("/dev/shm")
    require(shm.is_dir(), "/dev/shm (a RAM file system)")
    expected = shm
    if mount_options(shm) & {"noexec", "nosuid", "nodev"} - mount_options(workspace.parent):
        expected = workspace.parent
    assert scratch_parent(workspace, 1024) == expected
    # Far more than any machine's RAM: beside the workspace.
    assert scratch_parent(workspace, 1 << 60) == workspace.parent
    # No RAM file system at that path at all.
    assert scratch_parent(workspace, 1024, shm=tmp_path / "missing") == workspace.parent


def test_mount_options_of_the_root() -> None:
    from pytest_cleanroom.repeat.treediff import mount_options

    assert {"rw", "ro"} & mount_options(Path("/"))


def test_a_copy_settles_once_the_window_has_passed_and_changes_are_still_seen(
    pair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, two = pair
    bases = baselines(one, two)  # the copy was just made: every file in it is racy now
    time.sleep(treediff.RACY_WINDOW_NS / 1e9 + 0.02)
    now = time.time_ns()
    settled = (bases[0].as_of(now), bases[1].as_of(now))
    read: list[str] = []
    original = treediff._content

    def spy(path: Path, key: treediff.StatKey) -> bytes:
        read.append(path.name)
        return original(path, key)

    monkeypatch.setattr(treediff, "_content", spy)  # observes the reads, changes nothing
    assert diff(one, two, settled) is None
    assert read == []  # nothing was racy any more: stat alone decided
    (two / "sub" / "a.txt").write_text("ALPHA\n")  # same size, later tick: the stat moves
    found = diff(one, two, settled)
    assert found is not None
    assert found.startswith("file 'sub/a.txt' differs")
