"""What the host changes between two commands shows in the second exactly as in a cold start.

The engine keeps what a policy's filesystem plan takes from the host (which hidden paths exist,
whether each is a file or a directory, where links on the way lead) between commands, for as
long as the directories it was read from are unchanged. Here the host changes such a directory
between two commands of one backend, warm and cold, after letting its time stamps settle (so
the first command's plan is the kept one): a hidden file that did not exist appears, and a link
on the way to a hidden file is pointed at a directory that holds one. The second command must
find the file hidden (sentinel exit code 43 when it reads it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pytest_cleanroom import Policy
from pytest_cleanroom.backends import _nsinit_native
from tests.conftest import require
from tests.security.backends import probe_spec, require_backend
from tests.security.test_hidden_file_replaced import STARTS

pytestmark = pytest.mark.integration

PROBE = 'if grep -q secret "$1" 2>/dev/null; then echo read it; exit 43; fi'
#: Longer than the finest time stamp granularity the engine allows for (see lookups.py).
SETTLE = 0.05


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory the sandbox can read (``/var/tmp``: the test's ``/tmp`` is private)."""
    directory = Path(tempfile.mkdtemp(prefix="cleanroom-host-change-", dir="/var/tmp"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def write_secret(path: Path) -> None:
    new = path.with_name(path.name + "+")
    new.write_text("the secret\n")
    new.chmod(0o644)  # readable by anyone, the sandbox's unprivileged user too, but hidden
    os.replace(new, path)


def appears(base: Path) -> tuple[Path, Callable[[], None]]:
    """A hidden file that does not exist yet, and the host creating it."""
    secret = base / "secret"
    return secret, lambda: write_secret(secret)


def link_retargeted(base: Path) -> tuple[Path, Callable[[], None]]:
    """A hidden file reached through a link to an empty directory, and the host pointing the
    link (renamed over, as tools do) at a directory holding the file."""
    (base / "empty").mkdir(mode=0o755)
    (base / "full").mkdir(mode=0o755)
    write_secret(base / "full" / "secret")
    (base / "via").symlink_to("empty")

    def retarget() -> None:
        (base / "via+").symlink_to("full")
        os.replace(base / "via+", base / "via")

    return base / "via" / "secret", retarget


CHANGES = {"appears": appears, "link-retargeted": link_retargeted}


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("level", ["standard", "locked"])
@pytest.mark.parametrize("start", sorted(STARTS))
def test_a_host_change_between_two_commands_is_seen_by_the_second(
    tmp_path: Path, base: Path, start: str, level: str, change: str
) -> None:
    require_backend(start.split("-")[0])
    if start.endswith("-warm"):
        require(os.geteuid() == 0, "root: only root's commands enter warm sandboxes")
        require(_nsinit_native.program()[0] is not None, "the compiled set-up step")
    secret, host_change = CHANGES[change](base)
    fields = Policy.level(level).model_dump()
    fields["hidden_paths"] = [*fields["hidden_paths"], str(secret)]
    fields["readable_paths"] = [*fields["readable_paths"], str(base)]
    argv = ("/bin/sh", "-c", PROBE, "probe", str(secret))
    spec = probe_spec(argv, tmp_path, Policy.model_validate(fields))
    backend = STARTS[start]()
    try:
        backend.check(spec.policy)
        time.sleep(SETTLE)  # the first command's plan is then kept for the second
        first = backend.run(spec)
        host_change()
        second = backend.run(spec)
    finally:
        backend.close()
    assert (first.exit_code, first.stdout) == (0, ""), first.stderr
    assert (second.exit_code, second.stdout) == (0, ""), second.stderr
