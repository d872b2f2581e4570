"""The seccomp program file bubblewrap loads: kept in the engine's cache, shared, never leaked.

Each process used to write it into a ``/tmp/cleanroom-seccomp-*`` directory of its own, left
behind by every process killed outright. The file is now named by its digest in the engine's
cache; these tests kill a process that uses it, and plant in the cache what an attacker (or an
accident) would leave at its name.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from pytest_cleanroom.backends import _engine_cache, _seccomp
from tests.conftest import require

#: Prints the program file's path, then waits for stdin to close.
USE = (
    "import sys; from pytest_cleanroom.backends import _seccomp;"
    " print(_seccomp.program_file('strict', forbid_namespaces=True), flush=True);"
    " sys.stdin.read()"
)
PROGRAM = _seccomp.program("strict", forbid_namespaces=True)
NOBODY = 65534


def start(tmp_path: Path, cache: Path) -> tuple[subprocess.Popen[str], Path]:
    """A process holding the program file (temporary files under ``tmp_path / "tmp"``)."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir(exist_ok=True)
    env = {**os.environ, "TMPDIR": str(tmpdir), _engine_cache.CACHE_ENV: str(cache)}
    proc = subprocess.Popen(
        [sys.executable, "-c", USE],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line, proc.communicate(timeout=60)
    return proc, Path(line)


def used(tmp_path: Path, cache: Path) -> Path:
    """The program file a process used, once that process has exited normally."""
    proc, path = start(tmp_path, cache)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    return path


def test_a_killed_process_leaves_nothing_in_tmp(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    proc, path = start(tmp_path, cache)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert list((tmp_path / "tmp").iterdir()) == []
    assert path.parent == cache
    assert path.read_bytes() == PROGRAM
    assert used(tmp_path, cache) == path  # the next process uses the same file
    assert sorted(p.name for p in cache.iterdir()) == [path.name]


def test_a_symlink_planted_at_its_name_is_replaced_not_written_through(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = used(tmp_path, cache)
    victim = tmp_path / "victim"
    victim.write_bytes(b"not a program")
    path.unlink()
    path.symlink_to(victim)
    assert used(tmp_path, cache) == path
    assert not path.is_symlink()
    assert path.read_bytes() == PROGRAM
    assert victim.read_bytes() == b"not a program"


def test_a_fifo_or_a_changed_file_at_its_name_is_replaced(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = used(tmp_path, cache)
    path.unlink()
    os.mkfifo(path)  # opening it to write or read would block
    assert used(tmp_path, cache) == path
    assert path.read_bytes() == PROGRAM
    path.chmod(0o644)
    path.write_bytes(PROGRAM[:-8] + b"\x06\x00\x00\x00\x00\x00\xff\x7f")  # last: allow
    assert used(tmp_path, cache) == path
    assert path.read_bytes() == PROGRAM


def test_a_file_of_another_user_at_its_name_is_replaced(tmp_path: Path) -> None:
    require(os.geteuid() == 0, "root, to plant a file of another user")
    cache = tmp_path / "cache"
    path = used(tmp_path, cache)
    os.chown(path, NOBODY, NOBODY)  # the right bytes, but another user may change them
    assert used(tmp_path, cache) == path
    assert path.stat().st_uid == os.geteuid()
    assert path.read_bytes() == PROGRAM


def test_where_the_cache_cannot_be_used_a_private_file_is_removed_at_exit(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # another user could swap the program: not used
    proc, path = start(tmp_path, shared / "cache")
    assert path.parent.parent == tmp_path / "tmp"
    assert path.read_bytes() == PROGRAM
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert list((tmp_path / "tmp").iterdir()) == []
    assert list(shared.iterdir()) == []


def test_a_directory_planted_at_its_name_falls_back_to_a_private_file(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    path = used(tmp_path, cache)
    path.unlink()
    (path / "inside").mkdir(parents=True)
    fallback = used(tmp_path, cache)
    assert fallback.parent.parent == tmp_path / "tmp"
    assert list((tmp_path / "tmp").iterdir()) == []  # removed when that process exited
    assert (path / "inside").is_dir()
