"""The unshare backend's compiled set-up step builds exactly the sandbox the Python one builds,
and a command entering a warm sandbox sees exactly what a cold one sees.

The security suite attacks the unshare backend as the engine runs it (with the compiled step,
entering warm sandboxes, where a C compiler exists); these tests hold the ways of starting a
command to one behaviour, observed from inside: every mount with its options, privileges,
seccomp, host name, limits, environment, working directory and exit codes. The Python step stays
the fallback where no compiler is found.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_cleanroom import Policy
from pytest_cleanroom.backends import _nsinit_native
from pytest_cleanroom.backends.base import CommandSpec
from pytest_cleanroom.backends.bwrap import BwrapBackend
from pytest_cleanroom.backends.local import NamespaceBackend
from pytest_cleanroom.backends.namespace.filesystem import plan
from pytest_cleanroom.backends.unshare import UnshareBackend
from pytest_cleanroom.environment import build_environment
from pytest_cleanroom.policy_levels import LEVELS
from tests.conftest import require

from .conftest import require_backend

pytestmark = pytest.mark.integration

# Everything a command can see of how its sandbox was built. Mount IDs and device numbers
# differ between any two sandboxes: the mount point, its options and the filesystem's are kept.
PROBE = r"""
awk '{ split($0, halves, " - "); split(halves[2], fs, " ");
       print "mount", $5, $6, fs[1], fs[3] }' /proc/self/mountinfo
grep -E '^(Cap|NoNewPrivs|Seccomp)' /proc/self/status
hostname; pwd; env | sort; ulimit -a
echo userns-limit $(cat /proc/sys/user/max_user_namespaces)
unshare -U true 2>/dev/null && echo may create user namespaces
ls -la / /dev /tmp | awk '{ print $1, $NF }'
test $$ -le 3 && echo own PID namespace || echo host PIDs
"""


def backends(*, warm: bool = False) -> tuple[UnshareBackend, UnshareBackend]:
    require_backend("unshare")
    native = UnshareBackend(warm=warm)
    require(
        native.setup_program is not None,
        f"the compiled set-up step is unavailable: {_nsinit_native.program()[1]}",
    )
    python = UnshareBackend(native=False)
    assert python.setup_program is None
    return native, python


def made_by_plan(probed: str, targets: set[str]) -> list[str]:
    """The probe's lines without the mounts found under the host directories bound in (other
    processes on the host mount and unmount there while the tests run)."""
    kept = []
    for line in probed.splitlines():
        point = line.split()[1] if line.startswith("mount ") else None
        if point is None or point in targets or point.startswith("/dev/"):
            kept.append(line)
    return kept


def visible(probed: str, targets: set[str]) -> list[str]:
    """:func:`made_by_plan`, keeping of each mount point only the mount on top (what a command
    sees there), in order of mount point."""
    top: dict[str, str] = {}
    rest: list[str] = []
    for line in made_by_plan(probed, targets):
        if line.startswith("mount "):
            top[line.split()[1]] = line
        else:
            rest.append(line)
    return [top[point] for point in sorted(top)] + rest


def spec(workspace: Path, level: str, argv: tuple[str, ...]) -> CommandSpec:
    workspace.mkdir(exist_ok=True)
    policy = Policy.level(level)
    return CommandSpec(
        argv=argv,
        workspace=workspace,
        cwd="/workspace/sub",
        env=build_environment(seed=7, allowlist=(), layers=({"PROBE_VALUE": "a b\nc"},)),
        policy=policy,
        seed=7,
        timeout=60,
    )


@pytest.mark.parametrize("level", LEVELS)
def test_both_set_up_steps_build_the_same_sandbox(tmp_path: Path, level: str) -> None:
    native, python = backends()
    (tmp_path / "ws" / "sub").mkdir(parents=True)
    command = spec(tmp_path / "ws", level, ("/bin/sh", "-c", PROBE))
    for backend in (native, python):
        backend.check(command.policy)
    seen = [backend.run(command) for backend in (native, python)]
    for result in seen:
        assert result.exit_code == 0, result.stderr
    targets = {op.target for op in plan(command.policy, command.workspace)}
    assert made_by_plan(seen[0].stdout, targets) == made_by_plan(seen[1].stdout, targets)
    assert "NoNewPrivs:\t1" in seen[0].stdout
    assert "CapEff:\t0000000000000000" in seen[0].stdout
    assert "PROBE_VALUE=a b" in seen[0].stdout


#: Where commands enter a warm sandbox (as root with cgroups): where PIDs are isolated.
WARM = {(name, level) for name in ("unshare", "bwrap") for level in LEVELS if level != "permissive"}


def warm_and_cold(name: str) -> tuple[NamespaceBackend, NamespaceBackend]:
    if name == "unshare":
        warm, _ = backends(warm=True)
        return warm, UnshareBackend(warm=False)
    require_backend("bwrap")
    require(_nsinit_native.program()[0] is not None, "the compiled set-up step is unavailable")
    return BwrapBackend(), BwrapBackend(warm=False)


@pytest.mark.parametrize("name", ["unshare", "bwrap"])
@pytest.mark.parametrize("level", LEVELS)
def test_a_warm_start_sees_what_a_cold_start_sees(tmp_path: Path, level: str, name: str) -> None:
    warm, cold = warm_and_cold(name)
    (tmp_path / "ws" / "sub").mkdir(parents=True)
    command = spec(tmp_path / "ws", level, ("/bin/sh", "-c", PROBE))
    for backend in (warm, cold):
        backend.check(command.policy)
    try:
        seen = [warm.run(command), warm.run(command), cold.run(command)]
        holders = warm.warm_holders
    finally:
        warm.close()
    for result in seen:
        assert result.exit_code == 0, result.stderr
    targets = {op.target for op in plan(command.policy, command.workspace)}
    views = [visible(result.stdout, targets) for result in seen]
    if name == "bwrap":
        # A cold start's nested user namespace reads the default limit there; creating one
        # fails in both all the same (that line is compared).
        views = [[line for line in view if not line.startswith("userns-limit")] for view in views]
        if Policy.level(level).unprivileged_user and os.geteuid() == 0:
            # bubblewrap started as the unprivileged user binds /proc/bus and /proc/irq read-only
            # only where it could write them, which that user cannot: they are read-only to the
            # command both ways.
            skipped = ("mount /proc/bus ", "mount /proc/irq ")
            views = [[line for line in view if not line.startswith(skipped)] for view in views]
    first, later, reference = views
    assert first == reference
    assert later == reference
    if (name, level) in WARM:
        assert holders  # the first two runs entered a warm sandbox


@pytest.mark.parametrize(
    ("argv", "code", "stderr"),
    [
        (("no-such-program",), 127, "cleanroom: command not found: no-such-program\n"),
        (("./data",), 126, "cleanroom: cannot execute ./data: Permission denied\n"),
        (("./junk",), 126, "cleanroom: cannot execute ./junk: Exec format error\n"),
        (("/bin/sh", "-c", "kill -9 $$"), 137, ""),
        (("/bin/sh", "-c", "echo out; echo err >&2; exit 3"), 3, "err\n"),
    ],
)
def test_both_set_up_steps_report_exits_alike(
    tmp_path: Path, argv: tuple[str, ...], code: int, stderr: str
) -> None:
    native, python = backends()
    (tmp_path / "ws" / "sub").mkdir(parents=True)
    (tmp_path / "ws" / "sub" / "data").write_text("not a program\n")
    (tmp_path / "ws" / "sub" / "junk").write_text("not a program either\n")
    (tmp_path / "ws" / "sub" / "junk").chmod(0o755)
    warm, warm_bwrap, cold_bwrap = UnshareBackend(), BwrapBackend(), BwrapBackend(warm=False)
    try:
        for level, backend in [
            ("locked", native), ("locked", python), ("locked", warm), ("standard", warm_bwrap),
            ("locked", cold_bwrap),  # the compiled step as bubblewrap's PID 1 (--init)
        ]:  # fmt: skip
            result = backend.run(spec(tmp_path / "ws", level, argv))
            assert (result.exit_code, result.stderr) == (code, stderr)
        assert warm.warm_holders
        assert warm_bwrap.warm_holders
    finally:
        warm.close()
        warm_bwrap.close()
        cold_bwrap.close()


def test_the_set_up_program_compiles_without_warnings(tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    require(gcc is not None, "gcc not on PATH (apt-get install gcc)")
    assert gcc is not None
    done = subprocess.run(
        [gcc, *_nsinit_native.CFLAGS, "-Wall", "-Wextra", "-Werror", "-o", tmp_path / "nsinit",
         _nsinit_native.SOURCE],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_the_program_is_compiled_once_into_a_private_cache(tmp_path: Path) -> None:
    require(shutil.which("gcc") is not None, "gcc not on PATH (apt-get install gcc)")
    cache = tmp_path / "cache"
    path, why = _nsinit_native.program(cache)
    assert path is not None, why
    info = os.stat(path)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (
        os.geteuid(),
        0o555,
    )  # others run it, never change it
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    # Another process (no memo) finds it and compiles nothing.
    finder = (
        "import sys; from pathlib import Path; from pytest_cleanroom.backends import "
        "_nsinit_native as n; print(n.program(Path(sys.argv[1]))[0])"
    )
    again = subprocess.run(
        [sys.executable, "-c", finder, str(cache)], capture_output=True, text=True, check=True
    )
    assert again.stdout.strip() == path
    assert os.stat(path).st_ino == info.st_ino


def test_a_cache_others_may_write_is_not_used(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    path, why = _nsinit_native.program(shared / "pytest-cleanroom")
    assert path is None
    assert f"{shared} may be changed by another user" in why
    assert not (shared / "pytest-cleanroom").exists()


def test_a_tampered_program_in_the_cache_is_replaced(tmp_path: Path) -> None:
    require(shutil.which("gcc") is not None, "gcc not on PATH (apt-get install gcc)")
    cache = tmp_path / "cache"
    path, why = _nsinit_native.program(cache)
    assert path is not None, why
    good = Path(path).read_bytes()
    os.chmod(path, 0o777)
    Path(path).write_bytes(b"#!/bin/sh\necho tampered\n")
    finder = (
        "import sys; from pathlib import Path; from pytest_cleanroom.backends import "
        "_nsinit_native as n; print(n.program(Path(sys.argv[1]))[0])"
    )
    subprocess.run([sys.executable, "-c", finder, str(cache)], check=True)
    assert Path(path).read_bytes() == good
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o555
