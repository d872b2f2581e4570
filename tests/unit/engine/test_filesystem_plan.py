"""The sandbox's filesystem plan derived from a policy (no sandbox started)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pytest_cleanroom.backends.base import Mount
from pytest_cleanroom.backends.namespace.filesystem import FsOp, is_visible, plan, root_entries
from pytest_cleanroom.policy import Policy


def _by_target(ops: tuple[FsOp, ...]) -> dict[str, FsOp]:
    return {op.target: op for op in ops}


def test_host_root_entries_bound_read_only_and_root_remounted(tmp_path: Path) -> None:
    ops = plan(Policy.level("locked"), tmp_path)
    targets = _by_target(ops)
    assert targets["/usr"] == FsOp("ro-bind", "/usr", source="/usr")
    assert targets["/etc"].kind == "ro-bind"
    assert ops[-1] == FsOp("remount-ro", "/")
    for name, kind, link in root_entries():
        if kind == "link":
            assert targets["/" + name] == FsOp("symlink", "/" + name, source=link)


def test_hidden_top_level_becomes_empty_dir_and_nested_is_covered(tmp_path: Path) -> None:
    targets = _by_target(plan(Policy.level("standard"), tmp_path))
    if os.path.isdir("/root"):
        assert targets["/root"] == FsOp("dir", "/root")
    if os.path.isdir("/var/lib"):
        assert targets["/var/lib"] == FsOp("hide-dir", "/var/lib")
    if os.path.exists("/etc/shadow"):
        assert targets["/etc/shadow"] == FsOp("hide-file", "/etc/shadow")


def test_readable_path_under_hidden_one_is_bound_read_only(tmp_path: Path) -> None:
    if not os.path.isdir("/var/lib/dpkg"):
        return
    policy = Policy.level("standard").replace(readable_paths=("/var/lib/dpkg",))
    ops = plan(policy, tmp_path)
    targets = [op.target for op in ops]
    assert FsOp("ro-bind", "/var/lib/dpkg", source="/var/lib/dpkg") in ops
    assert targets.index("/var/lib") < targets.index("/var/lib/dpkg")


def test_readable_top_level_is_no_longer_hidden(tmp_path: Path) -> None:
    policy = Policy.level("standard").replace(readable_paths=("/root",))
    targets = _by_target(plan(policy, tmp_path))
    if os.path.isdir("/root"):
        assert targets["/root"] == FsOp("ro-bind", "/root", source="/root")


def test_private_tmp_and_shm_share_max_disk_and_workspace_mounted(tmp_path: Path) -> None:
    """Without the engine's shared scratch tmpfs (an unprivileged engine), /tmp and /dev/shm
    are two tmpfs of half of ``max_disk`` each: together never more than the budget."""
    policy = Policy.level("locked").replace(max_disk=124 * 4096)
    ops = plan(policy, tmp_path)
    targets = _by_target(ops)
    assert targets["/tmp"] == FsOp("tmpfs", "/tmp", size=62 * 4096)
    assert FsOp("tmpfs", "/dev/shm", size=62 * 4096) in ops
    assert ops.index(FsOp("remount-ro", "/dev")) > ops.index(
        FsOp("tmpfs", "/dev/shm", size=62 * 4096)
    )
    assert targets["/workspace"] == FsOp("bind", "/workspace", source=str(tmp_path))
    assert targets["/proc/sys"].kind == "ro-bind"


def test_shm_alone_gets_max_disk_when_tmp_is_the_hosts(tmp_path: Path) -> None:
    policy = Policy.level("permissive").replace(private_tmp=False, max_disk=124 * 4096)
    ops = plan(policy, tmp_path)
    assert FsOp("tmpfs", "/dev/shm", size=124 * 4096) in ops
    assert _by_target(ops)["/tmp"] == FsOp("bind", "/tmp", source="/tmp")


def test_mounts_come_after_the_tmpfs_they_live_in(tmp_path: Path) -> None:
    sockets = tmp_path / "sock"
    ops = plan(Policy.level("locked"), tmp_path, [Mount(sockets)])
    targets = [op.target for op in ops]
    assert targets.index("/tmp") < targets.index(str(sockets))
    assert ops[targets.index(str(sockets))].kind == "ro-bind"


def test_permissive_without_private_tmp_or_read_only_root(tmp_path: Path) -> None:
    policy = Policy.level("permissive").replace(private_tmp=False, read_only_root=False)
    ops = plan(policy, tmp_path)
    targets = _by_target(ops)
    assert targets["/tmp"] == FsOp("bind", "/tmp", source="/tmp")
    assert targets["/usr"].kind == "bind"
    assert FsOp("remount-ro", "/") not in ops


def test_allow_list_shows_system_directories_and_readable_paths_only(tmp_path: Path) -> None:
    policy = Policy.level("locked").replace(readable_paths=("/opt",))
    assert policy.filesystem_view == "allow-list"
    targets = _by_target(plan(policy, tmp_path))
    assert targets["/usr"].kind == "ro-bind"
    if os.path.isdir("/var") and not os.path.islink("/var"):
        assert targets["/var"] == FsOp("dir", "/var")  # an empty directory in the root
    assert is_visible(policy, "/usr/bin")
    assert is_visible(policy, "/opt")
    assert not is_visible(policy, "/var/log")
    assert not is_visible(policy, "/etc/shadow")
    assert is_visible(Policy.level("standard"), "/var/log")


def test_each_kind_of_hidden_path_gets_its_cover(tmp_path: Path) -> None:
    """A directory is covered by an empty directory, a file by an unreadable file, each where
    it really is: a link to one is covered where it leads (the link itself stays, leading
    there); a dangling link and a path that does not exist need nothing."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("secret")
    (tmp_path / "to-dir").symlink_to(tmp_path / "dir")
    (tmp_path / "to-file").symlink_to(tmp_path / "file")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    names = ("dir", "file", "to-dir", "to-file", "dangling", "missing")
    policy = Policy.level("standard").replace(
        private_tmp=False, hidden_paths=tuple(str(tmp_path / name) for name in names)
    )
    covers = {op.target: op.kind for op in plan(policy, tmp_path / "workspace")}
    assert {name: covers.get(str(tmp_path / name)) for name in (*names, "nowhere")} == {
        "dir": "hide-dir",
        "file": "hide-file",
        "to-dir": None,
        "to-file": None,
        "dangling": None,
        "missing": None,
        "nowhere": None,
    }


def test_a_hidden_path_the_host_creates_after_a_plan_is_covered_by_the_next(
    tmp_path: Path,
) -> None:
    """The host's part of a plan is kept between plans only while nothing it was read from
    changed: a hidden file that appears, or a link on the way pointed elsewhere, shows."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "key").write_text("secret")
    (tmp_path / "via").symlink_to("empty")
    hidden = (str(tmp_path / "secret"), str(tmp_path / "via" / "key"))
    policy = Policy.level("standard").replace(private_tmp=False, hidden_paths=hidden)
    time.sleep(0.05)  # older than the clock's granularity: the first plan is kept

    def covers() -> dict[str, str]:
        ops = plan(policy, tmp_path / "workspace")
        return {op.target: op.kind for op in ops if op.target.startswith(str(tmp_path))}

    assert covers() == covers() == {}
    (tmp_path / "secret").write_text("secret")
    assert covers() == {str(tmp_path / "secret"): "hide-file"}
    (tmp_path / "via+").symlink_to("full")
    os.replace(tmp_path / "via+", tmp_path / "via")
    assert covers() == {
        str(tmp_path / "secret"): "hide-file",
        str(tmp_path / "full" / "key"): "hide-file",
    }


def test_a_bind_at_or_above_the_scratch_root_gets_an_empty_directory_over_it() -> None:
    """Wherever a bind shows the engine's scratch root (by its own name or another), the plan
    covers it there; binds elsewhere need no cover; a bind of something inside it is refused."""
    from pytest_cleanroom.backends.namespace.filesystem import scratch_cover
    from pytest_cleanroom.errors import PolicyError
    from pytest_cleanroom.scratch import SCRATCH_ROOT

    hide = FsOp("hide-dir", SCRATCH_ROOT)
    assert scratch_cover(FsOp("ro-bind", "/run", source="/run"), "/run") == hide
    assert scratch_cover(FsOp("bind", "/", source="/"), "/") == hide
    assert scratch_cover(FsOp("ro-bind", SCRATCH_ROOT, source=SCRATCH_ROOT), SCRATCH_ROOT) == hide
    elsewhere = FsOp("ro-bind", "/mnt/r", source="/srv/link")  # a link to /run
    assert scratch_cover(elsewhere, "/run") == FsOp("hide-dir", f"/mnt/r{SCRATCH_ROOT[4:]}")
    assert scratch_cover(FsOp("ro-bind", "/usr", source="/usr"), "/usr") is None
    assert scratch_cover(FsOp("ro-bind", "/ru", source="/ru"), "/ru") is None
    assert scratch_cover(FsOp("symlink", "/run", source="/"), "/") is None
    inside = FsOp("ro-bind", "/x", source=f"{SCRATCH_ROOT}/1-ab/1/tmp")
    with pytest.raises(PolicyError, match="remove it from readable_paths"):
        scratch_cover(inside, f"{SCRATCH_ROOT}/1-ab/1/tmp")


def test_the_scratch_root_is_covered_after_what_shows_it_whatever_the_policy_hides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writable path at or above the scratch root, or a mount of one, is
    followed by a cover of the scratch root where it shows it (here a scratch root of the
    test's own: the engine's is made by a root engine only)."""
    from pytest_cleanroom.backends.namespace import filesystem

    shown = tmp_path / "run"
    root = shown / "cleanroom" / "scratch"
    root.mkdir(parents=True)
    monkeypatch.setattr(filesystem, "SCRATCH_ROOT", str(root))
    for writable in (shown, shown / "cleanroom"):
        policy = Policy.level("standard").replace(writable_paths=(str(writable),))
        ops = plan(policy, tmp_path / "ws", [Mount(shown, "/mnt/r")])
        at = [op.target for op in ops]
        for bound, cover in ((str(writable), str(root)), ("/mnt/r", "/mnt/r/cleanroom/scratch")):
            assert ops[at.index(cover)] == FsOp("hide-dir", cover), policy
            assert at.index(cover) > at.index(bound), policy


def test_a_hidden_directory_with_paths_let_through_is_made_read_only_after_them(
    tmp_path: Path,
) -> None:
    """The mount points of a readable or writable path inside a hidden directory are made in
    it before it is remounted read-only (not recursively: the writable path stays writable);
    a hidden directory with nothing let through is read-only from the start."""
    for name in ("closed/pub", "closed/out", "alone"):
        (tmp_path / name).mkdir(parents=True)
    closed, alone = str(tmp_path / "closed"), str(tmp_path / "alone")
    policy = Policy.level("standard").replace(
        private_tmp=False,
        hidden_paths=(closed, alone),
        readable_paths=(f"{closed}/pub",),
        writable_paths=(f"{closed}/out",),
    )
    ops = plan(policy, tmp_path / "workspace")
    at = {(op.kind, op.target): i for i, op in enumerate(ops)}
    assert ("hide-dir", alone) in at
    assert ("hide-dir", closed) not in at
    assert (
        at["tmpfs", closed]
        < at["ro-bind", f"{closed}/pub"]
        < at["bind", f"{closed}/out"]
        < at["remount-ro", closed]
        < at["remount-ro", "/"]
    )
