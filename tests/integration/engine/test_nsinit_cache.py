"""The compiled set-up step's cache: one build for every HOME, and nothing planted in it runs.

The program runs as root here, so these tests plant what an attacker (or an accident) would
leave in the cache directory and check that it is replaced, never followed or run.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_cleanroom.backends import _nsinit_build
from tests.conftest import require

FIND = (
    "import sys; from pathlib import Path;"
    " from pytest_cleanroom.backends import _nsinit_build as b;"
    " path, why = b.program(Path(sys.argv[1]) if len(sys.argv) > 1 else None);"
    " print(path or ''); print(why)"
)
NOBODY = 65534


@pytest.fixture(scope="module")
def shared_build() -> Path:
    """The program as this run uses it (built once): copied into a cache, no compiler runs."""
    require(shutil.which("gcc") is not None, "gcc not on PATH (apt-get install gcc)")
    path, why = _nsinit_build.program()
    assert path is not None, why
    return Path(path)


def seeded(cache: Path, shared_build: Path) -> Path:
    """``cache`` holding a copy of ``shared_build`` under its name, as a build leaves it."""
    cache.mkdir(mode=0o700)
    target = cache / shared_build.name
    shutil.copyfile(shared_build, target)
    target.chmod(0o555)
    return target


def find(cache: Path | None = None, **env: str) -> tuple[str, str]:
    """``program(cache)`` in a new process (no memo), with ``env`` on top of ours."""
    argv = [sys.executable, "-c", FIND, *([str(cache)] if cache is not None else [])]
    done = subprocess.run(
        argv, env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    path, why = done.stdout.split("\n", 1)
    return path, why.strip()


def built(cache: Path) -> Path:
    path, why = find(cache)
    assert path, why
    return Path(path)


def test_every_home_shares_one_build(tmp_path: Path, shared_build: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in (_nsinit_build.CACHE_ENV, "XDG_CACHE_HOME")
    }
    found = []
    for home in ("one", "two"):
        (tmp_path / home).mkdir()
        argv = [sys.executable, "-c", FIND]
        done = subprocess.run(
            argv,
            env={**env, "HOME": str(tmp_path / home)},
            capture_output=True,
            text=True,
            check=True,
        )
        found.append(done.stdout.split("\n", 1)[0])
    assert found[0], done.stdout
    assert found[0] == found[1]
    assert not found[0].startswith(str(tmp_path))
    assert found[0] == str(shared_build)  # the same as this process (another HOME) uses


def test_the_override_is_the_only_place_used(tmp_path: Path, shared_build: Path) -> None:
    seeded(tmp_path / "mine", shared_build)
    path, why = find(**{_nsinit_build.CACHE_ENV: str(tmp_path / "mine")})
    assert Path(path).parent == tmp_path / "mine", why
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    path, why = find(**{_nsinit_build.CACHE_ENV: str(shared / "cache")})
    assert path == ""  # not another place: the user named this one
    assert f"{shared} may be changed by another user" in why


def test_a_symlink_planted_as_the_program_is_replaced_not_followed(
    tmp_path: Path, shared_build: Path
) -> None:
    cache = tmp_path / "cache"
    target = seeded(cache, shared_build)
    good = target.read_bytes()
    evil = tmp_path / "evil.sh"
    evil.write_text(f"#!/bin/sh\ntouch {tmp_path / 'ran'}\n")
    evil.chmod(0o555)
    target.unlink()
    target.symlink_to(evil)
    assert built(cache) == target
    assert not target.is_symlink()
    assert target.read_bytes() == good
    assert evil.read_text().startswith("#!/bin/sh")  # not written through
    assert not (tmp_path / "ran").exists()


def test_a_program_of_another_owner_is_replaced(tmp_path: Path, shared_build: Path) -> None:
    require(os.geteuid() == 0, "root, to plant a file of another user")
    cache = tmp_path / "cache"
    target = seeded(cache, shared_build)
    good = target.read_bytes()
    target.unlink()
    target.write_text(f"#!/bin/sh\ntouch {tmp_path / 'ran'}\n")
    os.chown(target, NOBODY, NOBODY)
    target.chmod(0o555)
    assert built(cache) == target
    info = target.lstat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.geteuid(), 0o555)
    assert target.read_bytes() == good


def test_a_symlink_planted_as_the_lock_is_not_written_through(
    tmp_path: Path, shared_build: Path
) -> None:
    cache = tmp_path / "cache"
    target = seeded(cache, shared_build)
    assert built(cache) == target
    target.unlink()
    lock = cache / ".build.lock"
    victim = tmp_path / "victim"
    lock.symlink_to(victim)
    path, why = find(cache)
    assert path == ""
    assert "cannot lock" in why
    assert not victim.exists()  # neither created nor opened through the link
    assert not target.exists()


def test_a_cache_directory_of_another_user_is_not_used(tmp_path: Path) -> None:
    require(shutil.which("gcc") is not None, "gcc not on PATH (apt-get install gcc)")
    require(os.geteuid() == 0, "root, to make a directory of another user")
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    (tmp_path / "cache").symlink_to(theirs)  # a link to it is judged by where it leads
    path, why = find(tmp_path / "cache")
    assert path == ""
    assert f"{theirs} may be changed by another user" in why
    assert list(theirs.iterdir()) == []


def test_concurrent_processes_compile_once(tmp_path: Path) -> None:
    require(shutil.which("gcc") is not None, "gcc not on PATH (apt-get install gcc)")
    cache = tmp_path / "cache"
    go = tmp_path / "go"
    waiter = (
        "import os, sys, time; from pathlib import Path;"
        " from pytest_cleanroom.backends import _nsinit_build as b;"
        " Path(sys.argv[2]).touch();"
        " exec('while not os.path.exists(sys.argv[3]): time.sleep(0.005)');"
        " path, why = b.program(Path(sys.argv[1]));"
        " print(path, os.stat(path).st_ino if path else why)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", waiter, str(cache), str(tmp_path / f"ready-{i}"), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    while not all((tmp_path / f"ready-{i}").exists() for i in range(4)):
        time.sleep(0.01)
    go.touch()
    outputs = {proc.communicate(timeout=300)[0].strip() for proc in procs}
    # Each reports the file it found or made: one build, never replaced by a second one.
    assert len(outputs) == 1, outputs
    assert [p.name for p in cache.iterdir() if p.name.startswith(".build-")] == []
