"""Commands running at once on one backend never share what each is promised alone.

Two cleanrooms share one namespace backend (as tests share the pytest plugin's backend), and
three threads run commands on them at once, under alternating policies: one breaks its memory
and process limits over and over, the others run calm commands. Launchers made ahead, warm
sandboxes entered ahead, spare launchers and cgroups kept for reuse pass from one command to
the next meanwhile; each command must still get its own ``/tmp`` and ``/dev/shm``, and its
result only its own counters and limits (a calm command is never reported over a limit, nor
with the memory of another command).
"""

from __future__ import annotations

import textwrap
import threading
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy, cgroups
from pytest_cleanroom.backends import get_backend
from pytest_cleanroom.policy import MiB
from pytest_cleanroom.result import RunResult
from tests.conftest import require
from tests.security.backends import LOCAL_BACKENDS, require_backend

pytestmark = pytest.mark.integration

#: The limits the hog breaks.
HOG_POLICY = Policy.level("locked").replace(memory_limit=96 * MiB, max_processes=16)
HOG = "b = bytearray(300 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1"
BOMB = textwrap.dedent(
    """
    import os, time
    for i in range(40):
        if os.fork() == 0:
            time.sleep(1); os._exit(0)
    """
)
# Leaves a file named by its argument in /tmp and /dev/shm, then lists both.
MARK = textwrap.dedent(
    """
    import os, sys
    for directory in ("/tmp", "/dev/shm"):
        with open(f"{directory}/mine-{sys.argv[1]}", "w") as f:
            f.write("x")
    print(sorted(os.listdir("/tmp")), sorted(os.listdir("/dev/shm")))
    """
)
ROUNDS = 3


def own_marks(result: RunResult, tag: str) -> str | None:
    """What is wrong with a MARK command's result for ``tag`` (``None``: nothing)."""
    mine = [f"mine-{tag}"]
    if (result.exit_code, result.stdout) != (0, f"{mine} {mine}\n"):
        return f"{tag}: {result.exit_code} {result.stdout!r} {result.stderr[-300:]!r}"
    return None


@pytest.mark.parametrize("name", LOCAL_BACKENDS)
def test_commands_at_once_on_one_backend_keep_their_own_view_and_counters(
    tmp_path: Path, name: str
) -> None:
    require_backend(name)
    require(
        cgroups.parents() is not None,
        f"cgroups for whole-tree limits ({cgroups.why_unavailable()})",
    )
    backend = get_backend(name, HOG_POLICY)
    wrong: list[str | None] = []

    def hog(room: Cleanroom) -> None:
        for index in range(ROUNDS):
            result = room.run(["python3", "-c", HOG])
            if result.limit_exceeded != "memory":
                wrong.append(f"hog: {result.exit_code} {result.limit_exceeded}")
            result = room.run(["python3", "-c", BOMB])
            if result.limit_exceeded != "processes":
                wrong.append(f"bomb: {result.exit_code} {result.limit_exceeded}")
            wrong.append(own_marks(room.run(["python3", "-c", MARK, f"h{index}"]), f"h{index}"))

    def calm(room: Cleanroom, levels: tuple[str, ...], tag: str) -> None:
        for index in range(ROUNDS * 2):
            level = levels[index % len(levels)]
            result = room.run(["true"], policy=level)
            peak = result.peak_memory
            if (
                (result.exit_code, result.limit_exceeded) != (0, None)
                or not peak
                or peak > 48 * MiB
            ):
                wrong.append(
                    f"true under {level}: {result.exit_code} {result.limit_exceeded} {peak}"
                )
            marked = room.run(["python3", "-c", MARK, f"{tag}{index}"], policy=level)
            wrong.append(own_marks(marked, f"{tag}{index}"))

    try:
        with (
            Cleanroom(tmp_path / "hog", policy=HOG_POLICY, backend=backend, seed=1) as one,
            Cleanroom(tmp_path / "calm", policy="standard", backend=backend, seed=1) as two,
        ):
            threads = [
                threading.Thread(target=hog, args=(one,)),
                threading.Thread(target=calm, args=(two, ("standard",), "s")),
                threading.Thread(target=calm, args=(two, ("strict", "locked"), "t")),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            assert not any(thread.is_alive() for thread in threads)
    finally:
        backend.close()
    assert [problem for problem in wrong if problem is not None] == []
