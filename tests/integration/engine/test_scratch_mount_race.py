"""A sandbox being set up never loses one of the engine's scratch tmpfs or views under it.

bubblewrap binding ``/`` (its availability probe) or the host's ``/tmp`` (``private_tmp=False``)
recursively copies every mount below, then remounts each copy. Removing the directory of a mount
detaches its copies in every other mount namespace, so an engine that removed the directory of a
released scratch tmpfs or view right after unmounting it made such a bwrap fail ("Unable to
apply mount flags: remount .../cleanroom-scratch-.../view: No such file or directory"): 91 of 100
bwraps failed here while this engine's views came and went. The directories are now removed only
once no sandbox tool can still be setting up its copies.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import scratch
from pytest_cleanroom.backends.availability import find_program
from pytest_cleanroom.backends.idmap import IdmappedView
from tests.conftest import require

from .conftest import require_backend

pytestmark = pytest.mark.integration

BWRAPS = 40


@pytest.fixture
def churning_scratch(tmp_path: Path) -> Iterator[Path]:
    """This engine's scratch tmpfs and views made and released in a loop; its private directory."""
    require(os.geteuid() == 0, "the engine mounts scratch tmpfs and views as root only")
    private = scratch.private_mount_dir()
    assert private is not None
    stop = threading.Event()
    failures: list[BaseException] = []

    def churn() -> None:
        try:
            while not stop.is_set():
                views = [IdmappedView.create(tmp_path, idmapped=False) for _ in range(4)]
                tmpfs = [scratch.Scratch.create(1 << 20) for _ in range(2)]
                for view in views:
                    view.release()
                for made in tmpfs:
                    assert made is not None
                    made.release()
                stop.wait(0.01)  # no backlog of unmounts for the next test to wait for
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        yield private
    finally:
        stop.set()
        thread.join()
    assert failures == []


def test_bwrap_binding_the_host_recursively_survives_scratch_coming_and_going(
    churning_scratch: Path,
) -> None:
    require_backend("bwrap")
    bwrap = find_program("bwrap")
    assert bwrap is not None
    argv = [bwrap, "--unshare-user", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev",
            "true"]  # fmt: skip
    mine = []
    for _ in range(BWRAPS):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        # Only this engine's mounts are its business: other processes on the machine (an
        # older engine, a container engine) may make and remove mounts of their own.
        if done.returncode != 0 and str(churning_scratch) in done.stderr:
            mine.append(done.stderr.strip())
    assert mine == []


def test_the_directories_of_released_mounts_are_removed_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They do not pile up: each release removes those released long enough ago."""
    require(os.geteuid() == 0, "the engine mounts scratch tmpfs and views as root only")
    first = scratch.Scratch.create(1 << 20)
    assert first is not None
    first.release()
    view = IdmappedView.create(tmp_path, idmapped=False)
    monkeypatch.setattr(scratch, "KEEP_EMPTIED", 0.0)
    view.release()  # unmounted now, and every directory kept until now removed
    second = scratch.Scratch.create(1 << 20)
    assert second is not None
    second.release()
    for point in (first.root, view.path, view.path.parent, second.root):
        _wait_gone(point)


def _wait_gone(path: Path) -> None:
    """Wait for the background unmounter to have removed ``path`` (it works in order)."""
    for _ in range(6000):  # the unmounter may have a backlog: each unmount waits for RCU
        if not path.exists():
            return
        time.sleep(0.02)
    assert not path.exists()
