"""A command's streams cannot hang the engine, nor change its result or the next command's.

The init of a warm sandbox keeps the command's stdout and stderr until it has reported the exit
status, and the engine reads what the command wrote with the status. A command that floods both
streams past the pipes' size, closes its stdout early and keeps running, or leaves a process
holding the pipes (or still writing to them) after it exits must get exactly its own result:
every byte it wrote before it ended, its own exit code, no timeout; and the next command's
output is its own. A hang would show as a timed-out result (the cleanroom's timeout), never as
a timed assertion.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom
from pytest_cleanroom.policy_levels import MiB
from tests.security.backends import LOCAL_BACKENDS, require_backend

pytestmark = pytest.mark.integration

LOCAL = LOCAL_BACKENDS
#: Far beyond what any of these commands needs: a result that took it is a hang.
TIMEOUT = 60

# Writes 3 MiB to each stream, in turns of 64 KiB (more than a pipe holds before it is read).
FLOOD = textwrap.dedent(
    """
    import os
    for turn in range(48):
        os.write(1, bytes([65 + turn % 26]) * 65536)
        os.write(2, bytes([97 + turn % 26]) * 65536)
    """
)
FLOODED_OUT = b"".join(bytes([65 + turn % 26]) * 65536 for turn in range(48))
FLOODED_ERR = FLOODED_OUT.lower()

#: (command, exit code, stdout, stderr) each must report, whatever it leaves running.
CASES = {
    # Closes its stdout, then goes on writing to stderr and ends with a code of its own.
    "closes-stdout": ("echo before; exec 1>&-; sleep 0.2; echo after >&2; exit 5", 5, "before\n",
                      "after\n"),
    # A process of its own session keeps both pipes open, sleeping, after the command exits.
    "daemon-holds-pipes": ("setsid sleep 600 & echo done", 0, "done\n", ""),
    # A double fork (the grandchild reparented to PID 1) keeps writing to them.
    "orphan-keeps-writing": (
        "(sh -c 'while :; do echo late; echo late >&2; sleep 0.01; done' &) ; echo done; exit 3",
        3, "done\n", ""),
    # Its stdout and stderr closed, a child holds copies of both while the command sleeps on.
    "closes-both-child-holds": ("sleep 600 & exec 1>&- 2>&-; sleep 0.2; exit 4", 4, "", ""),
}  # fmt: skip


@pytest.mark.parametrize("level", ["standard", "locked"])
@pytest.mark.parametrize("name", LOCAL)
def test_both_streams_flooded_are_kept_whole(tmp_path: Path, name: str, level: str) -> None:
    require_backend(name)
    with Cleanroom(tmp_path / "ws", policy=level, backend=name, seed=1, timeout=TIMEOUT) as room:
        for _ in range(3):  # the first may build the warm sandbox, the others enter it
            result = room.run(["python3", "-c", FLOOD])
            assert (result.exit_code, result.timed_out) == (0, False), result.describe()
            assert len(result.stdout_bytes) == len(result.stderr_bytes) == 3 * MiB
            assert result.stdout_bytes == FLOODED_OUT
            assert result.stderr_bytes == FLOODED_ERR


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("level", ["standard", "locked"])
@pytest.mark.parametrize("name", LOCAL)
def test_what_a_command_leaves_on_its_streams_changes_no_result(
    tmp_path: Path, name: str, level: str, case: str
) -> None:
    require_backend(name)
    command, code, stdout, stderr = CASES[case]
    with Cleanroom(tmp_path / "ws", policy=level, backend=name, seed=1, timeout=TIMEOUT) as room:
        for _ in range(3):
            result = room.run(["sh", "-c", command])
            assert not result.timed_out, result.describe()
            # A late line written before the tree is ended may come first: only what follows
            # the command's own output would be wrong.
            assert (result.exit_code, result.stdout.replace("late\n", "")) == (code, stdout)
            assert result.stderr.replace("late\n", "") == stderr
            after = room.run(["sh", "-c", "echo next; ps -e -o comm= | sort | uniq -c | wc -l"])
            assert (after.exit_code, after.stderr) == (0, ""), after.describe()
            # Its own line, then only its own processes (sh, ps, sort, uniq, wc and PID 1).
            assert after.stdout.splitlines()[0] == "next"
            assert int(after.stdout.splitlines()[1]) <= 6, after.stdout
