"""Under ``strict`` and ``locked`` (``unprivileged_user``) a root engine's commands run as the
host's ``nobody``: file permissions are checked as for any unprivileged user of the host. On every
backend (bwrap and unshare, warm and cold, the compiled set-up step and the Python one; docker and
podman) a command cannot read a root-only file in its view, chmod, write, rename or chown a
root-owned file it can reach, create files in a root-owned directory, nor chown its workspace
files; what it writes outside its workspace is the host's uid 65534's. Its workspace stays
writable (what it writes there belongs to the workspace's owner on the host), the Python running
the engine (under ``/root``) still starts in it. Under ``standard`` and ``permissive`` the same
probe reads the file: commands there run as root of their own user namespace, which is the
invoking user (root) for file permissions, as docs/policies.md says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy, RunResult
from pytest_cleanroom.backends.base import Backend
from pytest_cleanroom.backends.bwrap import BwrapBackend
from pytest_cleanroom.backends.idmap import SANDBOX_GID, SANDBOX_UID
from pytest_cleanroom.backends.unshare import UnshareBackend
from pytest_cleanroom.errors import BackendUnavailableError
from pytest_cleanroom.policy import LEVELS
from pytest_cleanroom.testing import probes
from tests.conftest import require
from tests.security import ns_probes
from tests.security.backends import CONFORMANCE_BACKENDS, require_backend

pytestmark = pytest.mark.integration

UNPRIVILEGED = [level for level in LEVELS if Policy.level(level).unprivileged_user]
AS_ROOT_IN_NAMESPACE = [level for level in LEVELS if level not in UNPRIVILEGED]

#: How each local backend starts a command: entering a warm sandbox, built for it (cold), and
#: (unshare) the Python set-up step used where no C compiler is found.
_LOCAL: dict[str, Callable[[], Backend]] = {
    "bwrap-warm": BwrapBackend,
    "bwrap-cold": lambda: BwrapBackend(warm=False),
    "unshare-warm": UnshareBackend,
    "unshare-cold": lambda: UnshareBackend(warm=False),
    "unshare-python": lambda: UnshareBackend(native=False, warm=False),
}
_CONTAINERS = [name for name in CONFORMANCE_BACKENDS if name not in ("bwrap", "unshare")]


@pytest.fixture(params=[*_LOCAL, *_CONTAINERS])
def way(request: pytest.FixtureRequest) -> Callable[[], Backend | str]:
    """Each backend, and each way a local backend starts a command."""
    name: str = request.param
    require_backend(name.split("-")[0])
    return _LOCAL.get(name, lambda: name)


@dataclass(frozen=True)
class HostFiles:
    secret: str
    readable: Path  # a directory let through read-only, holding a root-only file
    writable: Path  # a root-owned directory (0755) bound read-write, holding a root-only file
    shared: Path  # a directory bound read-write that every user may write (1777)

    @property
    def key(self) -> Path:
        return self.readable / "key"

    @property
    def victim(self) -> Path:
        return self.writable / "victim"

    def policy(self, level: str) -> Policy:
        return Policy.level(level).replace(
            readable_paths=(str(self.readable),),
            writable_paths=(str(self.writable), str(self.shared)),
        )


@pytest.fixture
def host_files() -> Iterator[HostFiles]:
    require(
        os.geteuid() == 0,
        "root: only a root engine runs commands as the sandbox's unprivileged user (others run "
        "them as themselves, unprivileged already)",
    )
    # Under a directory every user can cross: the probe is about the files' own permissions.
    top = Path(tempfile.mkdtemp(prefix="cleanroom-uid-probe-"))
    top.chmod(0o755)
    files = HostFiles(uuid.uuid4().hex, top / "readable", top / "writable", top / "shared")
    for directory, path in ((files.readable, files.key), (files.writable, files.victim)):
        directory.mkdir(mode=0o755)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(files.secret)
    files.shared.mkdir()
    files.shared.chmod(0o1777)
    yield files
    shutil.rmtree(top)


def _probe(
    tmp_path: Path, backend: Backend | str, level: str, files: HostFiles
) -> tuple[RunResult, Path]:
    with Cleanroom(tmp_path / "ws", policy=files.policy(level), backend=backend) as room:
        host_made = room.workspace.root / "host-made"
        host_made.write_text("the host's")
        host_made.chmod(0o600)
        result = room.run(
            ["python3", "-c", ns_probes.FILE_PERMISSIONS, files.secret, str(files.key),
             str(files.victim), "host-made"]
        )  # fmt: skip
    return result, room.workspace.root


@pytest.mark.parametrize("level", UNPRIVILEGED)
def test_root_only_files_stay_out_of_reach_and_the_workspace_stays_writable(
    tmp_path: Path, way: Callable[[], Backend | str], level: str, host_files: HostFiles
) -> None:
    backend = way()
    result, workspace = _probe(tmp_path, backend, level, host_files)
    if result.exit_code == probes.ESCAPED:
        pytest.fail(f"file permission escape on {backend} under {level}: {result.describe()}")
    assert result.exit_code == probes.BLOCKED, result.describe()
    victim = host_files.victim.stat()
    assert (victim.st_uid, victim.st_mode & 0o777) == (0, 0o600)
    assert host_files.victim.read_text() == host_files.secret
    assert sorted(os.listdir(host_files.writable)) == ["victim"]
    # The command's writes landed, owned as the workspace is on the host.
    assert (workspace / "host-made").read_text() == "the host's and the command's"
    made = workspace / "made-here"
    assert made.read_text() == "made in the sandbox"
    assert (made.stat().st_uid, made.stat().st_gid) == (0, 0)
    assert (workspace / "host-made").stat().st_uid == 0


@pytest.mark.parametrize("level", UNPRIVILEGED)
def test_every_command_is_the_hosts_nobody_outside_its_workspace(
    tmp_path: Path, way: Callable[[], Backend | str], level: str, host_files: HostFiles
) -> None:
    # Three commands: a warm sandbox's first one builds it, the later ones enter it.
    with Cleanroom(tmp_path / "ws", policy=host_files.policy(level), backend=way()) as room:
        for n in range(3):
            room.run(["touch", str(host_files.shared / f"made-{n}")]).assert_success()
    for n in range(3):
        made = (host_files.shared / f"made-{n}").stat()
        assert (made.st_uid, made.st_gid) == (SANDBOX_UID, SANDBOX_GID)


@pytest.mark.parametrize("name", list(_LOCAL))
def test_the_engines_python_starts_for_the_unprivileged_user(tmp_path: Path, name: str) -> None:
    require_backend(name.split("-")[0])
    require(os.geteuid() == 0, "root: only a root engine runs commands as the unprivileged user")
    code = "import os, sys; print(sys.prefix, os.listdir('/root') == [] or 'listed')"
    with Cleanroom(tmp_path / "ws", policy="locked", backend=_LOCAL[name]()) as room:
        for _ in range(2):  # cold, then warm where the backend keeps sandboxes warm
            result = room.run([sys.executable, "-c", code]).assert_success()
            assert result.stdout.split()[0] == sys.prefix


@pytest.mark.parametrize("level", UNPRIVILEGED)
def test_no_file_with_a_set_id_bit_is_left_on_the_host(
    tmp_path: Path, way: Callable[[], Backend | str], level: str
) -> None:
    # What the command writes in its workspace is the workspace owner's on the host (root's):
    # a set-user-ID bit there would make a program that runs as root on the host.
    with Cleanroom(tmp_path / "ws", policy=level, backend=way()) as room:
        result = room.run(["python3", "-c", ns_probes.SET_ID_FILES, "planted"])
        workspace = room.workspace.root
        modes = {path.name: path.stat().st_mode for path in workspace.glob("planted*")}
    if result.exit_code == probes.ESCAPED:
        pytest.fail(f"set-ID file left under {level}: {result.describe()}")
    assert result.exit_code == probes.BLOCKED, result.describe()
    assert "planted" in modes
    assert not [name for name, mode in modes.items() if mode & 0o6000], modes


def test_standard_may_leave_set_id_files(tmp_path: Path, backend: str) -> None:
    """What the probe finds where the filter does not refuse set-ID modes (docs/policies.md)."""
    with Cleanroom(tmp_path / "ws", policy="standard", backend=backend) as room:
        result = room.run(["python3", "-c", ns_probes.SET_ID_FILES, "planted"])
    assert result.exit_code == probes.ESCAPED, result.describe()


@pytest.mark.parametrize("level", AS_ROOT_IN_NAMESPACE)
def test_standard_and_permissive_run_as_root_in_their_namespace_and_the_probe_sees_it(
    tmp_path: Path, backend: str, level: str, host_files: HostFiles
) -> None:
    result, _ = _probe(tmp_path, backend, level, host_files)
    assert result.exit_code == probes.ESCAPED, result.describe()
    assert f"read {host_files.key}" in result.stdout


def test_a_filesystem_without_idmapped_mounts_refuses_locked_with_the_fix(
    tmp_path: Path, backend: str
) -> None:
    require(os.geteuid() == 0, "root: only a root engine shows workspaces through idmapped mounts")
    fuse = shutil.which("fuse-overlayfs")
    require(fuse is not None, "fuse-overlayfs (apt-get install fuse-overlayfs)")
    assert fuse is not None
    layers = {name: tmp_path / name for name in ("lower", "upper", "work", "merged")}
    for path in layers.values():
        path.mkdir()
    options = f"lowerdir={layers['lower']},upperdir={layers['upper']},workdir={layers['work']}"
    subprocess.run([fuse, "-o", options, str(layers["merged"])], check=True)
    try:
        # A FUSE filesystem that does not opt in refuses idmapped mounts (EINVAL).
        with Cleanroom(layers["merged"] / "ws", policy="locked", backend=backend) as room:
            with pytest.raises(BackendUnavailableError, match="unprivileged_user=False"):
                room.run(["true"])
            # Opting out is recorded: the policy is no longer locked's.
            opted_out = Policy.level("locked").replace(unprivileged_user=False)
            result = room.run(["true"], policy=opted_out).assert_success()
            assert result.policy_digest != Policy.level("locked").digest()
    finally:
        subprocess.run(["fusermount3", "-u", "-z", str(layers["merged"])], check=False)
