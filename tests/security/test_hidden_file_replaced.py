"""A hidden host file stays hidden when the host replaces it, for every later command.

The host replaces files such as ``/etc/shadow`` and ``/etc/gshadow`` by writing a new one and
renaming it over the old (``useradd``, ``groupadd``, ``passwd``). The kernel then detaches a mount
kept on the old file in every other mount namespace, so a sandbox kept warm across commands lost
the mount that hid it, and each later command read the new file. Here the host replaces a hidden
file of its own (under ``/var/tmp``, never the real shadow files) between two commands of the
same backend, warm and cold; the second must find it hidden too (sentinel exit code 43).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import Policy
from pytest_cleanroom.backends import _nsinit_native
from pytest_cleanroom.backends.base import CommandSpec
from pytest_cleanroom.environment import build_environment
from tests.conftest import require
from tests.security.backends import STARTS, require_backend

pytestmark = pytest.mark.integration

LEAK = 43
PROBE = 'if grep -q secret "$1" 2>/dev/null; then echo read it; exit 43; fi'


@pytest.fixture
def secret() -> Iterator[Path]:
    """A file the policy hides, in a host directory the sandbox sees (``/var/tmp``: the test's
    own ``/tmp`` is private to every sandbox, and mounted afresh by each command)."""
    directory = Path(tempfile.mkdtemp(prefix="cleanroom-hidden-", dir="/var/tmp"))
    directory.chmod(0o755)  # readable by anyone, the sandbox's unprivileged user too, but hidden
    try:
        path = directory / "secret"
        path.write_text("the first secret\n")
        path.chmod(0o644)
        yield path
    finally:
        shutil.rmtree(directory)


def hiding(level: str, secret: Path) -> Policy:
    """``level`` with ``secret`` hidden and its directory readable (allow-list views see only
    the system directories otherwise)."""
    fields = Policy.level(level).model_dump()
    fields["hidden_paths"] = [*fields["hidden_paths"], str(secret)]
    fields["readable_paths"] = [*fields["readable_paths"], str(secret.parent)]
    return Policy.model_validate(fields)


def replace_as_the_host_does(path: Path, text: str) -> None:
    new = path.with_name(path.name + "+")
    new.write_text(text)
    new.chmod(0o644)
    os.replace(new, path)


@pytest.fixture
def secret_dir(secret: Path) -> Path:
    """A directory the policy hides, holding a readable ``key`` file."""
    directory = secret.with_name("keys")
    directory.mkdir(mode=0o755)
    (directory / "key").write_text("the first secret\n")
    (directory / "key").chmod(0o644)
    return directory


def swap_as_the_host_does(directory: Path, text: str) -> None:
    """Put a new directory in place of ``directory``: the old one moved aside, the new one
    renamed into its place (what tools replacing a whole directory at once do)."""
    new = directory.with_name(directory.name + "+")
    new.mkdir(mode=0o755)
    (new / "key").write_text(text)
    (new / "key").chmod(0o644)
    directory.rename(directory.with_name(directory.name + "-old"))
    new.rename(directory)


@pytest.mark.parametrize("level", ["standard", "strict", "locked"])
@pytest.mark.parametrize("start", sorted(STARTS))
def test_a_hidden_file_replaced_by_the_host_stays_hidden(
    tmp_path: Path, secret: Path, start: str, level: str
) -> None:
    require_backend(start.split("-")[0])
    warm = start.endswith("-warm")
    if warm:
        require(os.geteuid() == 0, "root: only root's commands enter warm sandboxes")
        require(_nsinit_native.program()[0] is not None, "the compiled set-up step")
    backend = STARTS[start]()
    spec = CommandSpec(
        argv=("/bin/sh", "-c", PROBE, "probe", str(secret)),
        workspace=tmp_path,
        cwd="/workspace",
        env=build_environment(seed=1, allowlist=(), layers=()),
        policy=hiding(level, secret),
        seed=1,
        timeout=60,
    )
    try:
        backend.check(spec.policy)
        first = backend.run(spec)
        replace_as_the_host_does(secret, "the second secret\n")
        second = backend.run(spec)
        holders = backend.warm_holders
    finally:
        backend.close()
    assert (first.exit_code, first.stdout) == (0, ""), first.stderr
    assert (second.exit_code, second.stdout) == (0, ""), second.stderr
    if warm:
        assert holders  # the second command entered the sandbox the first one's holder keeps


@pytest.mark.parametrize("level", ["standard", "strict", "locked"])
@pytest.mark.parametrize("start", sorted(STARTS))
def test_a_hidden_directory_swapped_by_the_host_stays_hidden(
    tmp_path: Path, secret_dir: Path, start: str, level: str
) -> None:
    require_backend(start.split("-")[0])
    if start.endswith("-warm"):
        require(os.geteuid() == 0, "root: only root's commands enter warm sandboxes")
        require(_nsinit_native.program()[0] is not None, "the compiled set-up step")
    backend = STARTS[start]()
    spec = CommandSpec(
        argv=("/bin/sh", "-c", PROBE, "probe", str(secret_dir / "key")),
        workspace=tmp_path,
        cwd="/workspace",
        env=build_environment(seed=1, allowlist=(), layers=()),
        policy=hiding(level, secret_dir),
        seed=1,
        timeout=60,
    )
    try:
        backend.check(spec.policy)
        first = backend.run(spec)
        swap_as_the_host_does(secret_dir, "the second secret\n")
        second = backend.run(spec)
    finally:
        backend.close()
    assert (first.exit_code, first.stdout) == (0, ""), first.stderr
    assert (second.exit_code, second.stdout) == (0, ""), second.stderr
