"""The repeat check on copy-on-write overlays: both runs start from the workspace without a copy
of it, and the workspace ends exactly as an unchecked run leaves it (hard links, renamed and
remade directories, removals, modes, times, special files), through the real engine and kernel."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.repeat.checker import RepeatChecker, RepeatCheckError
from pytest_cleanroom.repeat.overlay import PREFIX, sweep_stale, unavailable_reason
from pytest_cleanroom.repeat.replay import attach_repeat_checker
from pytest_cleanroom.repeat.treediff import scan
from pytest_cleanroom.scenarios import scenario, step
from tests.conftest import require, require_binary

pytestmark = pytest.mark.integration

BACKENDS = ["bwrap", "unshare"]

# Deterministic, and touching every kind of change an overlay records differently.
EVERYTHING = """set -e
echo more >> linked-a
echo new > fresh.tmp && mv fresh.tmp replaced-b
mv dir-old dir-new
rm -rf remade && mkdir remade && echo fresh > remade/only.txt
rm gone.txt
chmod 700 mode.sh
ln -s target.txt new-link
echo made > made && ln made made-too
mkfifo pipe
mkdir -p deep/er && echo d > deep/er/x
find . -exec touch -h -d @1000000000 {} +
"""


def populate(root: Path) -> None:
    (root / "dir-old" / "y").mkdir(parents=True)
    (root / "dir-old" / "x").write_text("x\n")
    (root / "dir-old" / "y" / "z").write_text("z\n")
    (root / "remade" / "sub").mkdir(parents=True)
    (root / "remade" / "old1").write_text("1\n")
    (root / "remade" / "sub" / "old2").write_text("2\n")
    (root / "linked-a").write_text("one\n")
    os.link(root / "linked-a", root / "linked-b")
    (root / "replaced-a").write_text("old\n")
    os.link(root / "replaced-a", root / "replaced-b")
    (root / "gone.txt").write_text("bye\n")
    (root / "mode.sh").write_text("#!/bin/sh\n")
    (root / "target.txt").write_text("t\n")


Shape = dict[str, tuple[str, int, bytes, int, str]]


def shape(root: Path) -> Shape:
    """Every entry's type, mode, content (or link target), mtime, and which entry it is a hard
    link of (the first path of its inode), plus the root's mode and mtime."""
    first_path: dict[int, str] = {}
    st = os.lstat(root)
    found: Shape = {"": ("dir", stat.S_IMODE(st.st_mode), b"", st.st_mtime_ns, "")}
    for rel in sorted(scan(root)):
        path = root / rel
        st = os.lstat(path)
        if stat.S_ISDIR(st.st_mode):
            kind, data = "dir", b""
        elif stat.S_ISLNK(st.st_mode):
            kind, data = "symlink", os.readlink(path).encode()
        elif stat.S_ISREG(st.st_mode):
            kind, data = "file", path.read_bytes()
        else:
            kind, data = stat.filemode(st.st_mode)[0], b""
        group = first_path.setdefault(st.st_ino, rel) if not stat.S_ISDIR(st.st_mode) else ""
        found[rel] = (kind, stat.S_IMODE(st.st_mode), data, st.st_mtime_ns, group)
    return found


def mounts_under(path: Path) -> list[str]:
    return [
        line.split()[4]
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4].startswith(str(path))
    ]


def layers_of(checker: RepeatChecker) -> Path:
    """Where the checker's overlays are mounted (in /dev/shm, or beside the workspace)."""
    assert checker._overlays is not None
    return checker._overlays.scratch


def overlay_checker(room: Cleanroom) -> RepeatChecker:
    reason = unavailable_reason(room.workspace.root)
    require(reason is None, f"overlay mounts are not possible here: {reason}")
    return attach_repeat_checker(room)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_workspace_ends_as_an_unchecked_run_leaves_it(tmp_path: Path, backend: str) -> None:
    require_binary(backend, "apt-get install bubblewrap util-linux")
    plain_root, checked_root = tmp_path / "plain" / "ws", tmp_path / "checked" / "ws"
    for root in (plain_root, checked_root):
        root.mkdir(parents=True)
        populate(root)
    with Cleanroom(plain_root, policy="standard", seed=3, backend=backend) as plain:
        plain.run(EVERYTHING).assert_success()
    room = Cleanroom(checked_root, policy="standard", seed=3, backend=backend)
    checker = overlay_checker(room)
    try:
        result = room.run(EVERYTHING)
        result.assert_success()
        assert checker.overlay_units == 1
        assert not checker.mismatches
        assert result.workspace == checked_root  # not the overlay the run saw
        assert shape(checked_root) == shape(plain_root)
        # The hard link written in place still links; the one replaced by a rename does not.
        linked = (checked_root / "linked-a", checked_root / "linked-b")
        assert os.stat(linked[0]).st_ino == os.stat(linked[1]).st_ino
        assert (checked_root / "linked-b").read_text() == "one\nmore\n"
        assert (checked_root / "replaced-a").read_text() == "old\n"
        scratch = layers_of(checker)
        assert not mounts_under(scratch)
    finally:
        checker.close()
        room.close()
    assert not scratch.exists()
    assert not list(checked_root.parent.glob(f"{PREFIX}*"))  # the staging directory


@pytest.mark.parametrize("backend", BACKENDS)
def test_neither_run_copies_the_workspace(tmp_path: Path, backend: str) -> None:
    require_binary(backend, "apt-get install bubblewrap util-linux")
    root = tmp_path / "ws"
    for i in range(300):
        (root / f"d{i % 10}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 10}" / f"f{i}.txt").write_text(f"{i}\n")
    room = Cleanroom(root, policy="standard", seed=3, backend=backend)
    checker = overlay_checker(room)
    try:
        room.run("cat d1/f1.txt > out.txt && echo two >> d2/f2.txt").assert_success()
        room.run("wc -l out.txt").assert_stdout_contains("1 out.txt")
        assert checker.overlay_units == 2
        assert not checker.mismatches
        assert (root / "d2" / "f2.txt").read_text() == "2\ntwo\n"
        held = [p for p in layers_of(checker).rglob("*") if p.is_file() and "merged" not in p.parts]
        assert len(held) <= 8, held  # only what the runs wrote, never the 300 files
    finally:
        checker.close()
        room.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_difference_fails_and_the_workspace_keeps_the_first_run(
    tmp_path: Path, backend: str
) -> None:
    require_binary(backend, "apt-get install bubblewrap util-linux")
    room = Cleanroom(tmp_path / "ws", policy="standard", seed=3, backend=backend)
    checker = overlay_checker(room)
    try:
        with pytest.raises(RepeatCheckError, match=r"wrote a different stderr"):
            room.run("head -c 16 /dev/urandom > noise; od -An -tx1 noise > /dev/stderr")
        first = room.history[-1]
        assert (room.workspace.root / "noise").stat().st_size == 16
        shown = subprocess.run(
            ["od", "-An", "-tx1", str(room.workspace.root / "noise")],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert shown == first.stderr  # the workspace holds what the first run reported
        room.run("test -s noise").assert_success()  # the next unit starts from it
        assert checker.overlay_units == 2
    finally:
        checker.close()
        room.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_concurrent_group_sees_its_files_while_checked(tmp_path: Path, backend: str) -> None:
    require_binary(backend, "apt-get install bubblewrap util-linux")
    room = Cleanroom(tmp_path / "ws", policy="standard", seed=3, backend=backend)
    checker = overlay_checker(room)
    sc = (
        scenario("group")
        .step("prepare", "mkdir -p out", expect_files=["out"])
        .concurrent(
            step("left", "echo l > out/left", expect_files=["out/left"]),
            step("right", "echo r > out/right", expect_files=["out/right"]),
        )
        .step("join", "cat out/left out/right", expect_stdout="l\nr")
    )
    try:
        result = room.run_scenario(sc)
        assert result.all_steps_succeeded(), result.failed_step
        assert checker.overlay_units == 3
        assert not checker.mismatches
        assert (room.workspace.root / "out" / "right").read_text() == "r\n"
    finally:
        checker.close()
        room.close()


def test_a_unit_that_raises_still_leaves_the_first_runs_changes(tmp_path: Path) -> None:
    require_binary("bwrap", "apt-get install bubblewrap")
    room = Cleanroom(tmp_path / "ws", policy="standard", seed=3, backend="bwrap")
    checker = overlay_checker(room)

    def unit(target: Cleanroom) -> None:
        target.run("echo partial > half.txt")
        raise KeyboardInterrupt  # as a Ctrl-C between the commands of a concurrent group

    try:
        with pytest.raises(KeyboardInterrupt):
            checker.check_unit(unit, describe="a unit", results_of=lambda _: [])
        assert (room.workspace.root / "half.txt").read_text() == "partial\n"
        assert not mounts_under(layers_of(checker))
    finally:
        checker.close()
        room.close()


def test_when_asked_the_check_copies_instead(tmp_path: Path) -> None:
    # (The docker backend always copies: tests/integration/scenario/test_repeat_on_docker.py.)
    require_binary("bwrap", "apt-get install bubblewrap")
    room = Cleanroom(tmp_path / "ws", policy="standard", seed=3, backend="bwrap")
    checker = attach_repeat_checker(room, copy_on_write=False)
    try:
        room.run("echo x > out.txt").assert_success()
        assert checker.overlay_units == 0
        assert checker.units_checked == 1
        assert checker._overlays is None
        assert checker._mirror is not None
        assert (room.workspace.root / "out.txt").read_text() == "x\n"
    finally:
        checker.close()
        room.close()


def test_overlays_of_a_killed_process_are_swept(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "kept.txt").write_text("kept\n")
    reason = unavailable_reason(root)
    require(reason is None, f"overlay mounts are not possible here: {reason}")
    child = subprocess.Popen(
        [
            sys.executable, "-c",
            "import os, signal, sys\n"
            "from pathlib import Path\n"
            "from pytest_cleanroom.repeat.overlay import OverlayPair\n"
            "pair = OverlayPair.create(Path(sys.argv[1]))\n"
            "pair.mount()\n"
            "(pair.first.merged / 'written.txt').write_text('w')\n"
            "print(pair.scratch, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n",
            str(root),
        ],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    scratch = Path(child.communicate(timeout=60)[0].strip())
    assert child.returncode == -signal.SIGKILL
    assert len(mounts_under(scratch)) == 2  # left behind by the killed process
    sweep_stale()
    assert not mounts_under(scratch)
    assert not scratch.exists()
    assert sorted(os.listdir(root)) == ["kept.txt"]  # the workspace was never written
