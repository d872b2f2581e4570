"""No sandbox reaches the root engine's private directories, whatever its policy shows of the host.

A root engine mounts each command's scratch tmpfs (its private ``/tmp`` and ``/dev/shm``) and
views under a private directory of its own in :data:`~pytest_cleanroom.scratch.SCRATCH_ROOT`,
which every sandbox plan covers with an empty read-only directory. A command whose policy shows
the host's ``/tmp`` (``private_tmp=False``), or ``/run`` itself, and that runs as uid 0
(capabilities dropped, ``unprivileged_user=False``) is the strongest attacker there is short of
root: the attacks below look for another command's secret everywhere it can (the mount table,
``/tmp``, ``/run``), try to read and change it, and try to plant files in the engine's private
directory or swap what it mounts on for links, while the same engine serves other commands.
Tests that need a root engine have ``root_engine`` in their names (the VM's user boot leaves
them out).
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

import pytest_cleanroom
from pytest_cleanroom import Cleanroom, Policy, cgroups, scratch
from pytest_cleanroom.backends import _nsinit_native, get_backend
from pytest_cleanroom.errors import CleanroomError
from pytest_cleanroom.scratch import SCRATCH_ROOT, Scratch, private_mount_dir
from tests.conftest import require
from tests.security.backends import wait_for_a_sandbox_entered_ahead

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


def _require_root_engine() -> None:
    require(os.geteuid() == 0, "a root engine (only root's engine mounts scratch tmpfs)")


# The victim: keeps a secret in its private /tmp until STOP appears in its workspace, then
# prints what its /tmp holds and the secret as it is now.
VICTIM = """
printf %s "$1" > "/tmp/$2"; touch /workspace/ready
while [ ! -e /workspace/stop ]; do sleep 0.05; done
ls -A /tmp; cat "/tmp/$2"
"""

# The attacker: looks for the file NAME everywhere a command seeing the host's /tmp (and /run)
# could find it: /tmp, /run, /dev/shm and every mount point the mount table lists (to depth 6,
# links not followed); reads each file so named and tries to change it and to create a file
# beside it; tries to create a file in every directory it finds below the scratch root ROOT
# (nowhere else: other processes' files are not to be touched). Prints what it achieved.
ATTACKER = textwrap.dedent(
    r"""
    import json, os, sys
    token, name, root = sys.argv[1:4]
    points = [line.split()[4] for line in open("/proc/self/mountinfo")]
    tops = {"/tmp", "/run", "/dev/shm", root} | {p for p in points
            if not p.startswith(("/proc", "/sys", "/usr", "/dev/pts"))}
    found, read, changed, planted, seen = [], [], [], [], set()
    def plant(directory):
        try:
            with open(os.path.join(directory, "cleanroom-planted"), "x") as f:
                f.write("planted")
            planted.append(directory)
        except OSError:
            pass
    for top in sorted(tops):
        if top.startswith(root):
            plant(top)
        for dirpath, dirnames, filenames in os.walk(top):
            if dirpath.count("/") - top.count("/") >= 6 or dirpath in seen:
                dirnames[:] = []
                continue
            seen.add(dirpath)
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
            if dirpath.startswith(root):
                plant(dirpath)
            if name in filenames:
                path = os.path.join(dirpath, name)
                found.append(path)
                plant(dirpath)
                try:
                    if token in open(path).read():
                        read.append(path)
                except OSError:
                    pass
                try:
                    with open(path, "w") as f:
                        f.write("changed")
                    changed.append(path)
                except OSError:
                    pass
    try:
        listed = os.listdir(root)
    except OSError as error:
        listed = [error.strerror]
    print(json.dumps({"found": found, "read": read, "changed": changed,
                      "planted": planted, "root": listed}))
    """
)

# The attacker's policies: the host's /tmp; the host's /tmp and /run, with no hidden path at all.
HOST_TMP = Policy.level("standard").replace(private_tmp=False, unprivileged_user=False)
VIEWS = {
    "host-tmp": HOST_TMP,
    "host-tmp-and-run": HOST_TMP.replace(hidden_paths=(), readable_paths=("/run",)),
}


@pytest.mark.parametrize("view", sorted(VIEWS))
@pytest.mark.parametrize("start", ["cold", "warm"])
def test_root_engine_keeps_a_concurrent_commands_tmp_out_of_reach(
    tmp_path: Path, local_backend: str, start: str, view: str
) -> None:
    """While a command of another cleanroom keeps a secret in its private /tmp, a command
    seeing the host's /tmp (and /run) as uid 0 can neither find, read nor change it, nor plant
    anything in the engine's directories; it finds the scratch root empty wherever it looks.
    ``warm``: the attack is not the backend's first command: it starts from a warm sandbox,
    and under ``host-tmp`` from a launcher that entered it ahead while the command before ran
    (``/run`` bound keeps the engine from making scratch tmpfs ahead)."""
    ahead = start == "warm" and view == "host-tmp"
    if ahead:
        require(cgroups.parents() is not None, "writable cgroups (sandboxes entered ahead)")
        require(_nsinit_native.program()[0] is not None, "the compiled set-up step (a C compiler)")
    _attack_a_concurrent_commands_tmp(
        tmp_path, local_backend, VIEWS[view], warm=start == "warm", ahead=ahead
    )


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_root_engine_keeps_a_concurrent_commands_tmp_out_of_a_containers_reach(
    tmp_path: Path, engine: str
) -> None:
    """The same attack from a container shown the host's /run (docker binds recursively; Podman
    keeps /run its own: shown /run/cleanroom there): the container gets an empty read-only
    directory over the scratch root too."""
    from tests.security.backends import require_backend

    require_backend(engine)
    shown = "/run" if engine == "docker" else os.path.dirname(SCRATCH_ROOT)
    policy = HOST_TMP.replace(hidden_paths=(), readable_paths=(shown,))
    _attack_a_concurrent_commands_tmp(tmp_path, engine, policy, warm=False)


def _attack_a_concurrent_commands_tmp(
    tmp_path: Path, attacker: str, policy: Policy, *, warm: bool, ahead: bool = False
) -> None:
    """Run :data:`ATTACKER` on ``attacker`` under ``policy`` while a bwrap command of another
    cleanroom keeps a secret in its private /tmp; assert it achieved nothing."""
    _require_root_engine()
    token = f"{os.getpid()}-{time.monotonic_ns()}"
    name = f"cleanroom-secret-{token}"
    victim_ws = tmp_path / "victim"
    victim_policy = Policy.level("standard").replace(unprivileged_user=False)
    victim_backend = attacker if attacker in ("bwrap", "unshare") else "bwrap"
    told: list[str] = []

    def victim() -> None:
        with Cleanroom(victim_ws, policy=victim_policy, backend=victim_backend) as room:
            run = room.run(["sh", "-c", VICTIM, "victim", token, name], timeout=300)
            told.append(run.stdout if run.exit_code == 0 else f"failed: {run.stderr}")

    backend = get_backend(attacker, policy)
    keeper = threading.Thread(target=victim)
    keeper.start()
    try:
        with Cleanroom(tmp_path / "attacker", policy=policy, backend=backend) as room:
            if warm:
                room.run(["true"]).assert_success()
            if ahead:
                wait_for_a_sandbox_entered_ahead(backend)
            deadline = time.monotonic() + 120
            while not (victim_ws / "ready").exists():
                assert keeper.is_alive(), told
                assert time.monotonic() < deadline, "the victim did not start within 120 s"
                time.sleep(0.05)
            attack = room.run(["python3", "-c", ATTACKER, token, name, SCRATCH_ROOT])
            assert attack.exit_code == 0, attack.stderr
    finally:
        (victim_ws / "stop").touch()
        keeper.join()
        backend.close()
    achieved = json.loads(attack.stdout)
    root = achieved.pop("root")
    assert achieved == {"found": [], "read": [], "changed": [], "planted": []}
    assert root in ([], ["No such file or directory"]), root
    assert told == [f"{name}\n{token}"], told


def test_root_engine_scratch_root_is_root_s_alone() -> None:
    """The scratch root and the directory above it belong to root, no one else may write them
    (others may only cross them); each private directory in it has its owner lock beside it."""
    _require_root_engine()
    made = Scratch.create(1 << 20)
    assert made is not None
    try:
        private = private_mount_dir()
        assert private is not None
        assert str(private.parent) == SCRATCH_ROOT
        for path in (os.path.dirname(SCRATCH_ROOT), SCRATCH_ROOT):
            st = os.lstat(path)
            assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o711), path
        assert Path(f"{private}.lock").is_file()
    finally:
        made.release()


def test_root_engine_refuses_a_scratch_root_others_could_change(tmp_path: Path) -> None:
    """A scratch root reached through a link, owned by another user, writable by others, or
    below a directory others may write (the host's /tmp) is refused, naming the path and the
    fix; nothing is made through the link."""
    _require_root_engine()
    base = Path(f"/run/cleanroom-test-{os.getpid()}-{time.monotonic_ns()}")
    base.mkdir(mode=0o711)
    try:
        base.chmod(0o711)
        (base / "link").symlink_to(tmp_path)
        (base / "other").mkdir()
        os.chown(base / "other", 65534, 65534)
        (base / "open").mkdir()
        (base / "open").chmod(0o777)
        cases = {
            f"{base}/link/scratch": (f"{base}/link is a link", False),
            f"{base}/other/scratch": (f"{base}/other belongs to uid 65534", True),
            f"{base}/open/scratch": (f"{base}/open is writable by others", True),
            f"{tmp_path}/scratch": ("/tmp is writable by others", True),
        }
        for root, (why, _) in cases.items():
            with pytest.raises(scratch.ScratchRootError) as refused:
                os.close(scratch.open_scratch_root(root))
            assert str(refused.value).startswith(why), str(refused.value)
            assert "chown root:root" in str(refused.value)
        assert os.listdir(tmp_path) == []  # nothing made through the link
        for part in ("other", "open"):
            assert os.listdir(base / part) == []
        fresh = scratch.open_scratch_root(f"{base}/fresh/scratch")
        os.close(fresh)
        assert (base / "fresh" / "scratch").stat().st_mode & 0o7777 == 0o711
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(base)], check=True)


# An engine whose scratch root is the link given: its first scratch tmpfs fails with the error.
REFUSING = textwrap.dedent(
    """
    import sys
    from pytest_cleanroom import scratch
    scratch.SCRATCH_ROOT = sys.argv[1]
    try:
        scratch.Scratch.create(1 << 20)
    except scratch.ScratchRootError as error:
        print(type(error).__name__, error)
    """
)


def test_root_engine_with_a_wrong_scratch_root_fails_with_the_fix(tmp_path: Path) -> None:
    """The engine does not fall back to something weaker when its scratch root is wrong: the
    command fails with the one error that names the path and the fix."""
    _require_root_engine()
    (tmp_path / "elsewhere").mkdir()
    tmp_path.chmod(0o755)
    told = subprocess.run(
        [sys.executable, "-c", REFUSING, f"{tmp_path}/elsewhere/scratch"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert told.returncode == 0, told.stderr
    assert told.stdout.startswith("ScratchRootError /tmp is writable by others"), told.stdout
    assert issubclass(scratch.ScratchRootError, CleanroomError)


# A nested engine's sweep (as root, in a sandbox that shows the host's /tmp and /run): it looks
# for the outer engine's private directory where it is on the host, sweeps as an engine starts,
# then tries to remove it; prints what it saw and could do.
NESTED = textwrap.dedent(
    """
    import os, shutil, sys
    from pytest_cleanroom import scratch
    outer = sys.argv[1]
    parent = os.path.dirname(outer)
    seen = os.path.exists(outer) or os.path.basename(outer) in (
        os.listdir(parent) if os.path.isdir(parent) else [])
    print("seen" if seen else "unseen", flush=True)
    scratch._unmount_leftovers()
    scratch._remove_litter()
    shutil.rmtree(outer, ignore_errors=True)
    """
)


def test_root_engine_directory_is_out_of_a_nested_engines_sight_and_sweep(
    tmp_path: Path, local_backend: str
) -> None:
    """A pytest nested in a sandbox that shows the host's /tmp and /run, root in its own PID
    namespace (where the outer engine's pid names no process): it neither sees the outer
    engine's private directory nor removes it, and the outer scratch tmpfs stays mounted."""
    _require_root_engine()
    made = Scratch.create(1 << 20)
    assert made is not None
    package = str(Path(pytest_cleanroom.__file__).parent.parent)
    policy = VIEWS["host-tmp-and-run"].replace(readable_paths=("/run", package))
    try:
        with Cleanroom(tmp_path / "ws", policy=policy, backend=local_backend) as room:
            nested = room.run(
                ["python3", "-c", NESTED, str(made.root.parent)],
                env={"PYTHONPATH": package},
            )
        assert (nested.exit_code, nested.stdout) == (0, "unseen\n"), nested.stderr
        assert _mounts_at_or_below(made.root) == [str(made.root)]
        assert made.tmp.is_dir()
    finally:
        made.release()


SWEEP_ONLY = "from pytest_cleanroom import scratch; scratch._unmount_leftovers()"


def test_root_engine_unmounts_an_older_versions_dead_leftovers_in_tmp() -> None:
    """A private directory an earlier version left in the host's /tmp is unmounted and removed
    once its owner is gone (the lock of its owner file is free); one whose owner cannot be told
    (no owner file: its owner may live in another PID namespace) is left as it is."""
    _require_root_engine()
    where = tempfile.gettempdir()
    dead = tempfile.mkdtemp(prefix=f"cleanroom-scratch-{os.getpid()}-", dir=where)
    unknown = tempfile.mkdtemp(prefix=f"cleanroom-scratch-{os.getpid()}-", dir=where)
    try:
        for path in (dead, unknown):
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", path], check=True)
        Path(dead, "owner").write_text("")  # an owner file nobody holds the lock of
        sweep = subprocess.run(
            [sys.executable, "-c", SWEEP_ONLY],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert sweep.returncode == 0, sweep.stderr
        assert _mounts_at_or_below(Path(dead)) == []
        assert not os.path.exists(dead)
        assert _mounts_at_or_below(Path(unknown)) == [unknown]
    finally:
        for path in (dead, unknown):
            subprocess.run(["umount", "-l", path], check=False, capture_output=True)
            if os.path.isdir(path):
                os.rmdir(path)


def test_root_engine_sweeps_the_scratch_root_by_owner_locks_not_pids(tmp_path: Path) -> None:
    """In the scratch root, a directory no mount of this namespace is on is removed only once
    its owner lock is free (or gone) and it stood unchanged for a while: one whose lock a live
    process holds (an engine in another mount and PID namespace, whose pid means nothing here)
    stays, and so does a fresh one; a lock left without its directory goes too."""
    _require_root_engine()
    made = Scratch.create(1 << 20)  # the scratch root exists
    assert made is not None
    made.release()
    tag = f"{10**9 + os.getpid()}"  # a pid no process has
    names = {kind: f"{tag}-{kind}" for kind in ("held", "free", "lockless", "fresh", "stray")}
    root = Path(SCRATCH_ROOT)
    for kind, name in names.items():
        if kind != "stray":
            (root / name).mkdir()
            (root / name / "left").write_text("what a sandbox left")
        if kind != "lockless":
            (root / f"{name}.lock").touch()
    holder = subprocess.Popen(["flock", str(root / f"{names['held']}.lock"), "sleep", "600"])
    try:
        while _lock_free(root / f"{names['held']}.lock"):
            assert holder.poll() is None, "flock did not take the lock"
            time.sleep(0.01)
        old = time.time() - 3600
        for kind, name in names.items():
            if kind != "fresh":
                for path in (root / name, root / f"{name}.lock"):
                    if path.exists():
                        os.utime(path, (old, old))
        kept = (names["held"], names["fresh"])
        expected = [*kept, *(f"{name}.lock" for name in kept)]
        deadline = time.monotonic() + 60
        while True:  # another engine's sweep (another xdist worker) may hold the root a moment
            scratch._remove_litter()
            left = sorted(n for n in os.listdir(root) if n.startswith(f"{tag}-"))
            if left == sorted(expected) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert left == sorted(expected)
    finally:
        holder.kill()
        holder.wait()
        subprocess.run(
            ["rm", "-rf", "--one-file-system", *(str(p) for p in root.glob(f"{tag}-*"))],
            check=True,
        )


def _lock_free(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


# Lists the scratch root as the mount of the host's /run shows it, and every mount the table
# puts below it.
THROUGH_A_MOUNT = """
ls -A /hostrun/cleanroom/scratch; echo --
awk '$5 ~ "^/hostrun/cleanroom/scratch/" {print $5}' /proc/self/mountinfo | while read p; do
  ls -A "$p" 2>&1; done; true
"""


@pytest.mark.parametrize("level", ["standard-as-root", "locked"])
def test_root_engine_scratch_root_is_covered_in_a_mount_of_run(
    tmp_path: Path, local_backend: str, level: str
) -> None:
    """A command given the host's /run as a mount (elsewhere: /hostrun) finds the scratch
    root there empty, as root of its sandbox; where its user is the unprivileged one (the
    mount would be shown through a view: a recursive clone holding every command's /tmp) the
    mount is refused with the fix."""
    from pytest_cleanroom.backends.base import CommandSpec, Mount
    from pytest_cleanroom.environment import build_environment
    from pytest_cleanroom.errors import PolicyError

    _require_root_engine()
    policy = (
        Policy.level("standard").replace(unprivileged_user=False)
        if level == "standard-as-root"
        else Policy.level("locked")
    )
    held = Scratch.create(1 << 20)  # a scratch tmpfs of another command, mounted meanwhile
    assert held is not None
    (tmp_path / "ws").mkdir()
    spec = CommandSpec(
        argv=("/bin/sh", "-c", THROUGH_A_MOUNT),
        workspace=tmp_path / "ws",
        cwd="/workspace",
        env=build_environment(seed=1, allowlist=(), layers=()),
        policy=policy,
        seed=1,
        timeout=60,
        mounts=(Mount(Path("/run"), "/hostrun"),),
    )
    backend = get_backend(local_backend, policy)
    try:
        if policy.unprivileged_user:
            with pytest.raises(PolicyError, match="a view of it would hold"):
                backend.run(spec)
        else:
            seen = backend.run(spec)
            listed, below = seen.stdout.split("--\n")
            assert (seen.exit_code, listed) == (0, ""), seen.stderr
            # The mount table still names what the cover hides; none of it can be reached.
            for line in below.splitlines():
                assert line.endswith("No such file or directory"), below
    finally:
        backend.close()
        held.release()
