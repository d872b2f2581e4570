"""What the engine answers once per reading of the host is answered again once the host changes.

A policy's filesystem plan takes its host part (which hidden paths exist, where links on the
way lead) from a reading of the host kept while the directories it was read from are unchanged;
the checks made for each command from that reading (whether the sandbox entered ahead hides the
same files, whether a bind shows the directory holding the next command's scratch tmpfs) are
kept with it. Here the host changes such a directory after letting its time stamps settle (so
the first answer is the kept one); the next answer must be the one a fresh look gives.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import Policy
from pytest_cleanroom.backends.local import _scratch_out_of_sight
from pytest_cleanroom.backends.namespace.filesystem import HostPart, plan_and_host
from pytest_cleanroom.errors import PolicyError
from pytest_cleanroom.scratch import private_mount_dir
from tests.conftest import require

pytestmark = pytest.mark.integration

#: Longer than the finest time stamp granularity the engine allows for (see lookups.py).
SETTLE = 0.05


@pytest.fixture
def base() -> Iterator[Path]:
    """A host directory of the test's own (``/var/tmp``: not below the scratch directory)."""
    directory = Path(tempfile.mkdtemp(prefix="cleanroom-kept-checks-", dir="/var/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def kept_host_part(policy: Policy, workspace: Path) -> HostPart:
    """The host part plans of ``policy`` share once every directory it was read from has
    settled: other processes' files come and go in ``/var/tmp`` and ``/tmp`` meanwhile, so it
    is read again until two plans in a row get the same one (never: the test fails)."""
    for _ in range(100):
        time.sleep(SETTLE)
        host = plan_and_host(policy, workspace)[1]
        if host.settled and plan_and_host(policy, workspace)[1] is host:
            return host
    pytest.fail("no two plans in a row shared a host part: it is never kept")


def retarget(link: Path, target: Path) -> None:
    """Point ``link`` at ``target`` the way tools do: a new link renamed over the old."""
    new = link.with_name(link.name + "+")
    new.symlink_to(target)
    os.replace(new, link)


def test_the_host_part_is_one_object_only_while_the_host_is_unchanged(
    base: Path, tmp_path: Path
) -> None:
    """Plans share one host part while nothing it was read from changed, so that what was
    checked against it holds; a change gives the next plan a new one."""
    (base / "secret").write_text("secret")
    policy = Policy.level("standard").replace(hidden_paths=(str(base / "secret"),))
    first = kept_host_part(policy, tmp_path)
    assert str(base / "secret") in first.hidden
    (base / "secret+").write_text("another secret")
    os.replace(base / "secret+", base / "secret")  # the hidden file is another one now
    assert plan_and_host(policy, tmp_path)[1] is not first


def test_a_bind_retargeted_at_the_scratch_directory_is_seen(base: Path, tmp_path: Path) -> None:
    """A writable path reached through a link that the host points at the directory holding
    the scratch tmpfs (inside the hidden ``/run``) is refused by the next plan, though the
    answer for the plan before the change was kept: a link never lets a hidden path through."""
    where = private_mount_dir()
    require(where is not None, "a root engine (the scratch tmpfs are its mounts)")
    assert where is not None
    (base / "elsewhere").mkdir()
    (base / "via").symlink_to(base / "elsewhere")
    policy = Policy.level("standard").replace(writable_paths=(str(base / "via"),))
    time.sleep(SETTLE)
    for _ in range(2):  # the second answer is the kept one
        ops, host = plan_and_host(policy, tmp_path)
        assert _scratch_out_of_sight(ops, host)
    retarget(base / "via", where.parent)
    time.sleep(SETTLE)
    for _ in range(2):
        with pytest.raises(PolicyError, match=r"writable_paths: .*via.* leads to .*hidden_paths"):
            plan_and_host(policy, tmp_path)
