"""bwrap's availability probe survives mounts that come and go under ``/`` while it runs.

The probe binds ``/`` recursively; a container engine unmounting and deleting an overlay at that
moment made bwrap fail with "Can't bind mount /oldroot/ on /newroot/: Unable to apply mount flags:
remount ...", and the probe (remembered for the whole process) declared bwrap unusable: every
later cleanroom of that pytest run was refused. Here real tmpfs mounts are made, unmounted and
their directories removed in a loop while the probe runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom.backends import availability
from tests.conftest import require

from .conftest import require_backend

pytestmark = pytest.mark.integration

CHURNERS = 3
PROBES = 100


@pytest.fixture
def churning_mounts(tmp_path: Path) -> Iterator[Path]:
    """Mount points under ``tmp_path`` mounted, unmounted and removed in a loop."""
    require(os.geteuid() == 0, "mounting tmpfs needs root")
    loop = "while :; do mkdir -p {d}; mount -t tmpfs churn {d}; umount {d}; rmdir {d}; done"
    loops = [
        subprocess.Popen(
            ["sh", "-c", loop.format(d=d)], stderr=subprocess.DEVNULL, start_new_session=True
        )
        for d in (tmp_path / f"churn-{k}" / "m" for k in range(CHURNERS))
    ]
    try:
        yield tmp_path
    finally:
        for loop in loops:  # the whole group: a mount(8) still running would mount after
            os.killpg(loop.pid, signal.SIGKILL)
            loop.wait()
        with open("/proc/mounts") as mounts:
            left = [line.split()[1] for line in mounts if line.split()[1].startswith(str(tmp_path))]
        for point in reversed(left):
            subprocess.run(["umount", point], check=False)


def test_a_mount_vanishing_during_the_probe_does_not_make_bwrap_unusable(
    churning_mounts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_backend("bwrap")
    bwrap = availability.find_program("bwrap")
    assert bwrap is not None
    problems = []
    for _ in range(PROBES):
        monkeypatch.setattr(availability, "_probes", {})
        problem = availability.probe_bwrap(bwrap, disable_userns=False)
        if problem is not None:
            problems.append(problem)
    assert problems == []


def test_a_real_failure_is_still_reported_after_the_tries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bwrap that always fails the same way is not tried forever and is named."""
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho \"bwrap: Can't bind mount /oldroot/ on /newroot/: Unable to apply mount "
        f'flags: remount \\"/newroot/x\\": Invalid argument" >&2\necho x >> {tmp_path}/calls\n'
        "exit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setattr(availability, "_probes", {})
    problem = availability.probe_bwrap(str(fake), disable_userns=False)
    assert problem is not None
    assert "Unable to apply mount flags" in problem
    assert (tmp_path / "calls").read_text().count("x") == availability._MOUNT_RACE_TRIES
