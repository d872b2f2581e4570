"""safe_write: output paths are written atomically, devices and FIFOs written through, links out
of the directory and other special files refused; several files all or nothing."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from pytest_cleanroom.errors import OutputPathError
from pytest_cleanroom.safe_write import (
    _Target,
    check_output,
    open_output,
    stage_output,
    write_output,
    write_outputs,
)
from tests.conftest import require


def _null_device(directory: Path) -> Path:
    """A real character device with /dev/null's numbers, made in a temporary directory."""
    require(os.geteuid() == 0, "root, to mknod a character device")
    node = directory / "null"
    os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return node


def test_new_and_regular_files_are_written_atomically(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    write_output(target, "one")
    assert target.read_text() == "one"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    before = target.stat().st_ino
    target.chmod(0o600)
    write_output(target, b"two")
    assert target.read_bytes() == b"two"
    assert target.stat().st_ino != before  # replaced by rename, not rewritten in place
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # the user's permissions kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_character_device_is_written_through_never_replaced(tmp_path: Path) -> None:
    node = _null_device(tmp_path)
    before = node.lstat()
    write_output(node, "report")
    with open_output(node) as handle:
        handle.write(b"more")
    check_output(node)
    after = node.lstat()
    assert stat.S_ISCHR(after.st_mode)
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_dev_null_is_accepted_without_writing_to_it() -> None:
    """Only a read-only check on the host's /dev/null: it is a device, so it is written through."""
    check_output("/dev/null")
    assert stat.S_ISCHR(os.lstat("/dev/null").st_mode)


def test_a_fifo_with_a_reader_is_written_through(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    for _ in range(200):  # the writer's non-blocking open needs the reader to be there
        try:
            write_output(fifo, "through the pipe")
            break
        except OutputPathError:
            threading.Event().wait(0.01)
    reader.join(10)
    assert received == [b"through the pipe"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_fifo_nobody_reads_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputPathError, match="FIFO that nobody reads"):
        write_output(fifo, "x")
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_a_link_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").symlink_to(victim)
    with pytest.raises(OutputPathError, match=r"symbolic link to .*out of its directory"):
        write_output(out / "report.json", "evil")
    with pytest.raises(OutputPathError):
        check_output(out / "report.json")
    assert victim.read_text() == "keep"
    assert (out / "report.json").is_symlink()
    (out / "rel").symlink_to("../victim")
    with pytest.raises(OutputPathError):
        write_output(out / "rel", "evil")
    assert victim.read_text() == "keep"


def test_a_link_to_a_file_in_the_same_directory_writes_that_file(tmp_path: Path) -> None:
    (tmp_path / "real.json").write_text("old")
    (tmp_path / "latest.json").symlink_to("real.json")
    write_output(tmp_path / "latest.json", "new")
    assert (tmp_path / "latest.json").is_symlink()
    assert (tmp_path / "real.json").read_text() == "new"


@pytest.mark.parametrize("kind", ["directory", "socket"])
def test_directories_and_sockets_are_refused(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "thing"
    if kind == "directory":
        target.mkdir()
    else:
        import socket

        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(target))
        sock.close()
    with pytest.raises(OutputPathError, match=f"is a {kind}"):
        write_output(target, "x")
    assert target.exists()


def test_a_block_device_is_refused(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "root, to mknod a block device")
    node = tmp_path / "disk"
    os.mknod(node, 0o600 | stat.S_IFBLK, os.makedev(7, 250))
    with pytest.raises(OutputPathError, match="block device"):
        write_output(node, "x")
    assert stat.S_ISBLK(node.lstat().st_mode)


def test_an_error_inside_open_output_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.write_text("old")

    def broken_download() -> None:
        with open_output(target) as handle:
            handle.write(b"half")
            raise RuntimeError("download broke")

    with pytest.raises(RuntimeError):
        broken_download()
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_write_outputs_writes_nothing_when_one_file_cannot_be_staged(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("old a")
    (tmp_path / "blocked").mkdir()
    with pytest.raises(OutputPathError):
        write_outputs([(tmp_path / "a", "new a"), (tmp_path / "blocked", "x")])
    assert (tmp_path / "a").read_text() == "old a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "blocked"]


def test_a_path_created_while_staging_is_not_replaced(tmp_path: Path) -> None:
    staged = stage_output(tmp_path / "new", "mine")
    (tmp_path / "new").write_text("someone else's")
    with pytest.raises(OutputPathError, match="appeared while"):
        staged.commit()
    assert (tmp_path / "new").read_text() == "someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new"]


def test_a_parent_that_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError):
        write_output(tmp_path / "file" / "out", "x")


@pytest.mark.parametrize(
    "path",
    [
        "out.txt",
        "a/b/out.txt",
        "./a//b/./out.txt",
        "/tmp/x/out",
        "a/b/",
        "/",
        ".",
        "",
        "a/..",
    ],
)
def test_an_output_path_is_split_as_pathlib_splits_it(path: str) -> None:
    # safe_write loads no pathlib (the lifecycle's cache-hit path writes through it)
    target, expected = _Target(path), Path(path)
    assert (target.parent, target.name) == (str(expected.parent), expected.name)
    assert str(target) == str(expected)


def test_writing_a_relative_name_writes_it_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    write_output("plain.txt", "here")
    write_output("./sub//../plain2.txt", "there")
    assert (tmp_path / "plain.txt").read_text() == "here"
    assert (tmp_path / "plain2.txt").read_text() == "there"
