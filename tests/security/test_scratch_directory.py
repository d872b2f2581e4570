"""A sandbox that sees the host's /tmp cannot change the root engine's private directory.

A root engine mounts each command's scratch tmpfs and views under a private directory in the
host's ``/tmp``. A command whose policy leaves that ``/tmp`` visible and writable runs as uid 0
(capabilities dropped) when ``unprivileged_user`` is off: if it could write there, it could
plant files, or swap a directory the engine is about to mount on for a link to a host path of
its choosing, so that the engine mounted over that path. The attack below tries both, in a
loop, while the same engine mounts the scratch and views of other commands.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.scratch import Scratch, private_mount_dir

pytestmark = pytest.mark.integration

LOCAL = ["bwrap", "unshare"]

# Until STOP exists: chmod the engine's private directory PLACE writable, plant a file in it,
# and replace each directory in it by a link to BAIT; prints how many of each succeeded (at
# least one round). Only this test's engine is attacked: others (of other test processes) too
# would be harmed by a success.
ATTACK = textwrap.dedent(
    r"""
    import os, sys
    stop, bait, place = sys.argv[1:4]
    changed = planted = swapped = rounds = 0
    while rounds == 0 or not os.path.exists(stop):
        rounds += 1
        for place in [place]:
            try:
                os.chmod(place, 0o777)
                changed += 1
            except OSError:
                pass
            try:
                with open(f"{place}/cleanroom-planted", "w") as f:
                    f.write("planted")
                planted += 1
            except OSError:
                pass
            try:
                names = os.listdir(place)
            except OSError:
                names = []
            for name in names:
                child = f"{place}/{name}"
                try:
                    os.rename(child, f"{child}-moved")
                except OSError:
                    try:
                        os.rmdir(child)
                    except OSError:
                        continue
                try:
                    os.symlink(bait, child)
                    swapped += 1
                except OSError:
                    pass
    print("changed", changed, "planted", planted, "swapped", swapped)
    """
)


@pytest.fixture(params=LOCAL)
def local_backend(request: pytest.FixtureRequest) -> str:
    from tests.security.backends import require_backend

    name: str = request.param
    require_backend(name)
    return name


def _mounts_at_or_below(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == str(path) or p.startswith(f"{path}/")]


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root engine mounts in the host's /tmp")
def test_a_sandbox_seeing_the_hosts_tmp_cannot_change_the_engines_directory(
    tmp_path: Path, local_backend: str
) -> None:
    bait = tmp_path / "bait"
    bait.mkdir()
    (bait / "mine").write_text("the test's own file")
    stop = tmp_path / "stop"
    host_tmp = Policy.level("standard").replace(private_tmp=False, unprivileged_user=False)
    others = Policy.level("standard")  # scratch tmpfs and workspace views mounted each time
    results: list[str] = []

    def attack() -> None:
        with Cleanroom(tmp_path / "attacker", policy=host_tmp, backend=local_backend) as room:
            for _ in range(2):  # a cold start, then a command started ahead
                run = room.run(
                    ["python3", "-c", ATTACK, str(stop), str(bait), str(private)], timeout=300
                )
                assert run.exit_code == 0, run.stderr
                results.append(run.stdout)

    attacker = threading.Thread(target=attack)
    with Cleanroom(tmp_path / "victim", policy=others, backend=local_backend) as room:
        room.run(["true"])  # the private directory exists before the attack starts
        private = private_mount_dir()
        assert private is not None
        attacker.start()
        try:
            for _ in range(12):
                assert room.run(["true"]).exit_code == 0
                assert _mounts_at_or_below(bait) == []
        finally:
            stop.touch()
            attacker.join()
    assert len(results) == 2, "the attacking command did not run to the end"
    for printed in results:
        assert printed == "changed 0 planted 0 swapped 0\n", results
    assert _mounts_at_or_below(bait) == []
    assert sorted(os.listdir(bait)) == ["mine"]
    assert not (private / "cleanroom-planted").exists()
    assert not any(name.endswith("-moved") for name in os.listdir(private))


# Sweeps the leftovers of dead engines from another PID namespace, then prints whether the
# given scratch tmpfs is still mounted (it counts its mounts in its own mount namespace).
SWEEP = textwrap.dedent(
    """
    import sys
    from pytest_cleanroom import scratch
    scratch._unmount_leftovers()
    points = [line.split()[4] for line in open("/proc/self/mountinfo")]
    print("mounted" if sys.argv[1] in points else "gone")
    """
)


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root engine mounts in the host's /tmp")
def test_a_sweep_in_another_pid_namespace_leaves_a_live_engines_mounts() -> None:
    made = Scratch.create(1 << 20)
    assert made is not None
    try:
        # In a PID namespace of its own this process's pid means nothing: the sweep must not
        # take the directory for a dead engine's (it would remove the directories mounted on).
        sweep = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", SWEEP,
             str(made.root)],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert (sweep.returncode, sweep.stdout) == (0, "mounted\n"), sweep.stderr
        assert _mounts_at_or_below(made.root) == [str(made.root)]
        assert made.tmp.is_dir()
        assert made.shm.is_dir()
    finally:
        made.release()


def test_a_dead_engines_directory_is_swept(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only a root engine mounts in the host's /tmp")
    # An engine that dies without cleaning up (os._exit skips its exit handlers).
    dead = subprocess.run(
        [sys.executable, "-c",
         "import os; from pytest_cleanroom.scratch import Scratch; "
         "print(Scratch.create(1 << 20).root, flush=True); os._exit(0)"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    left = Path(dead.stdout.strip())
    assert _mounts_at_or_below(left.parent) != []
    sweep = subprocess.run(
        [sys.executable, "-c", SWEEP, str(left)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert (sweep.returncode, sweep.stdout) == (0, "gone\n"), sweep.stderr
    assert _mounts_at_or_below(left.parent) == []
    assert not left.parent.exists()
