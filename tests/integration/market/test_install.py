"""add / remove / update / verify against a local registry, and atomicity on every failure."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from ggen_market.lockfile import read_lock
from tests.conftest import ggen_env

from .conftest import ggen, tree_state, write_gpack


def build_registry(root: Path) -> Path:
    result = ggen("market", "index", str(root))
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    root = tmp_path / "registry"
    write_gpack(root, "io.test.base", "1.0.0", files={"templates/a.tmpl": "---\nto: a\n---\nA\n"})
    write_gpack(root, "io.test.base", "1.1.0", files={"templates/a.tmpl": "---\nto: a\n---\nB\n"})
    write_gpack(root, "io.test.base", "2.0.0")
    write_gpack(root, "io.test.app", "1.0.0", deps={"io.test.base": "^1.0"})
    write_gpack(root, "io.test.tool", "0.3.0", deps={"io.test.app": "~1.0"})
    return build_registry(root)


def add(project: Path, registry: Path, *specs: str) -> dict[str, object]:
    result = ggen("market", "add", *specs, "--registry", str(registry), "--project",
                  str(project), "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def fail(project: Path, registry: Path, *args: str) -> str:
    result = ggen("market", *args, "--registry", str(registry), "--project", str(project))
    assert result.exit_code == 1, result.output
    return result.stderr


def test_add_resolves_transitively_and_writes_the_lock(project: Path, registry: Path) -> None:
    data = add(project, registry, "io.test.tool")
    added = {(p["id"], p["version"]) for p in data["added"]}  # type: ignore[attr-defined,index]
    assert added == {("io.test.tool", "0.3.0"), ("io.test.app", "1.0.0"), ("io.test.base", "1.1.0")}
    lock = read_lock(project / "ggen.lock")
    assert lock is not None
    assert lock.requires == {"io.test.tool": "^0.3.0"}
    assert lock.packages["io.test.app"].dependencies == ("io.test.base@1.1.0",)
    base = lock.packages["io.test.base"]
    assert base.install_dir(project).joinpath("templates/a.tmpl").read_text().endswith("B\n")
    assert base.source == registry.resolve().as_uri()
    assert len(base.sha256) == 64


def test_lock_is_deterministic(project: Path, registry: Path, tmp_path: Path) -> None:
    add(project, registry, "io.test.app")
    other = tmp_path / "other"
    other.mkdir()
    add(other, registry, "io.test.app")
    assert (project / "ggen.lock").read_bytes() == (other / "ggen.lock").read_bytes()


def test_range_is_honoured_and_recorded(project: Path, registry: Path) -> None:
    add(project, registry, "io.test.base@~1.0.0")
    lock = read_lock(project / "ggen.lock")
    assert lock is not None
    assert lock.packages["io.test.base"].version == "1.0.0"
    assert lock.requires["io.test.base"] == "~1.0.0"


def test_add_with_lock_installs_exactly_what_it_pins(
    project: Path, registry: Path, tmp_path: Path
) -> None:
    add(project, registry, "io.test.base@^1.0")
    pinned = read_lock(project / "ggen.lock")
    assert pinned is not None
    assert pinned.packages["io.test.base"].version == "1.1.0"
    # A newer matching version appears; a fresh checkout (lock, no .ggen) still gets 1.1.0.
    write_gpack(registry, "io.test.base", "1.2.0")
    build_registry(registry)
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "ggen.lock").write_bytes((project / "ggen.lock").read_bytes())
    data = add(clone, registry)
    assert [(p["id"], p["version"]) for p in data["added"]] == [("io.test.base", "1.1.0")]  # type: ignore[attr-defined,index]
    assert (clone / "ggen.lock").read_bytes() == (project / "ggen.lock").read_bytes()
    # update moves within the range.
    result = ggen("market", "update", "--registry", str(registry), "--project", str(clone))
    assert result.exit_code == 0, result.output
    updated = read_lock(clone / "ggen.lock")
    assert updated is not None
    assert updated.packages["io.test.base"].version == "1.2.0"
    assert not (clone / ".ggen/packages/io.test.base/1.1.0").exists()


def test_remove_drops_orphaned_dependencies(project: Path, registry: Path) -> None:
    add(project, registry, "io.test.tool")
    stderr = fail(project, registry, "remove", "io.test.base")
    assert "only as a dependency of io.test.app" in stderr
    result = ggen("market", "remove", "io.test.tool", "--project", str(project), "--json")
    assert result.exit_code == 0, result.output
    removed = {p["id"] for p in json.loads(result.stdout)["removed"]}
    assert removed == {"io.test.tool", "io.test.app", "io.test.base"}
    assert not (project / ".ggen/packages/io.test.base").exists()
    lock = read_lock(project / "ggen.lock")
    assert lock is not None
    assert not lock.packages
    assert not lock.requires


def test_verify_detects_modified_and_missing_packages(project: Path, registry: Path) -> None:
    add(project, registry, "io.test.app")
    ok = ggen("market", "verify", "--project", str(project))
    assert ok.exit_code == 0, ok.output
    gpack_toml = project / ".ggen/packages/io.test.app/1.0.0/gpack.toml"
    gpack_toml.write_text(gpack_toml.read_text() + "\n# tampered\n")
    (project / ".ggen/packages/io.test.base/1.1.0/templates/a.tmpl").unlink()
    bad = ggen("market", "verify", "--project", str(project), "--json")
    assert bad.exit_code == 1
    status = {p["id"]: p["status"] for p in json.loads(bad.stdout)["packages"]}
    assert status == {"io.test.app": "modified", "io.test.base": "modified"}
    # `add` with the lock repairs them from the registry.
    data = add(project, registry)
    assert {p["id"] for p in data["repaired"]} == {"io.test.app", "io.test.base"}  # type: ignore[attr-defined,index]
    assert ggen("market", "verify", "--project", str(project)).exit_code == 0


def test_conflicting_ranges_are_reported_with_both_requesters(
    project: Path, tmp_path: Path
) -> None:
    root = tmp_path / "conflict"
    write_gpack(root, "io.test.lib", "1.0.0")
    write_gpack(root, "io.test.lib", "2.0.0")
    write_gpack(root, "io.test.left", "1.0.0", deps={"io.test.lib": "^1.0"})
    write_gpack(root, "io.test.right", "1.0.0", deps={"io.test.lib": "^2.0"})
    build_registry(root)
    add(project, root, "io.test.left")
    before = tree_state(project)
    stderr = fail(project, root, "add", "io.test.right")
    assert "io.test.lib" in stderr
    assert "io.test.left@1.0.0 requires io.test.lib ^1.0" in stderr
    assert "io.test.right@1.0.0 requires io.test.lib ^2.0" in stderr
    assert "available: 2.0.0, 1.0.0" in stderr
    assert tree_state(project) == before


def test_dependency_cycle_is_refused(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "cycle"
    write_gpack(root, "io.test.a", "1.0.0", deps={"io.test.b": "^1"})
    write_gpack(root, "io.test.b", "1.0.0", deps={"io.test.c": "^1"})
    write_gpack(root, "io.test.c", "1.0.0", deps={"io.test.a": "^1"})
    build_registry(root)
    stderr = fail(project, root, "add", "io.test.a")
    assert "dependency cycle: io.test.a@1.0.0 -> io.test.b@1.0.0 -> io.test.c@1.0.0" in stderr
    assert not (project / ".ggen").exists()
    assert not (project / "ggen.lock").exists()


def test_unknown_id_suggests_the_close_one(project: Path, registry: Path) -> None:
    stderr = fail(project, registry, "add", "io.test.ap")
    assert "did you mean 'io.test.app'" in stderr


def test_ggen_compat_excludes_versions_for_other_tools(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "compat"
    write_gpack(root, "io.test.new", "1.0.0", compat=">=99.0")
    build_registry(root)
    stderr = fail(project, root, "add", "io.test.new")
    assert "do not support this ggen" in stderr
    assert ">=99.0" in stderr


def _tamper_archive(registry: Path, pack: str) -> None:
    index = json.loads((registry / "index.json").read_text())
    archive = registry / index["packs"][pack]["versions"]["1.0.0"]["archive"]
    archive.write_bytes(archive.read_bytes()[:-20] + b"\0" * 20)


def test_sha_mismatch_is_refused_with_both_digests_and_nothing_changes(
    project: Path, registry: Path
) -> None:
    add(project, registry, "io.test.base@1.0.0")
    before = tree_state(project / ".ggen", project / "ggen.lock")
    index = json.loads((registry / "index.json").read_text())
    expected = index["packs"]["io.test.app"]["versions"]["1.0.0"]["sha256"]
    _tamper_archive(registry, "io.test.app")
    stderr = fail(project, registry, "add", "io.test.app")
    assert "sha256 mismatch" in stderr
    assert expected in stderr
    actual = (
        __import__("hashlib")
        .sha256(
            (registry / index["packs"]["io.test.app"]["versions"]["1.0.0"]["archive"]).read_bytes()
        )
        .hexdigest()
    )
    assert actual in stderr
    assert tree_state(project / ".ggen", project / "ggen.lock") == before


def test_failure_in_a_fresh_project_leaves_no_trace(project: Path, registry: Path) -> None:
    _tamper_archive(registry, "io.test.app")
    fail(project, registry, "add", "io.test.app")
    assert sorted(p.name for p in project.iterdir()) == []


def test_index_pointing_to_missing_archive(project: Path, registry: Path) -> None:
    index = json.loads((registry / "index.json").read_text())
    (registry / index["packs"]["io.test.app"]["versions"]["1.0.0"]["archive"]).unlink()
    stderr = fail(project, registry, "add", "io.test.app")
    assert "missing archive" in stderr
    assert sorted(p.name for p in project.iterdir()) == []


def test_archive_holding_another_package_is_refused(project: Path, registry: Path) -> None:
    add(project, registry, "io.test.base@1.0.0")
    before = tree_state(project / ".ggen", project / "ggen.lock")
    index_path = registry / "index.json"
    index = json.loads(index_path.read_text())
    # Point io.test.app at io.test.base's archive, with that archive's (correct) digest.
    base = index["packs"]["io.test.base"]["versions"]["2.0.0"]
    index["packs"]["io.test.app"]["versions"]["1.0.0"].update(
        archive=base["archive"], sha256=base["sha256"], dependencies={}
    )
    index_path.write_text(json.dumps(index))
    stderr = fail(project, registry, "add", "io.test.app")
    assert "holds io.test.base@2.0.0" in stderr
    assert tree_state(project / ".ggen", project / "ggen.lock") == before


def test_hostile_archive_in_registry_leaves_project_untouched(
    project: Path, registry: Path, tmp_path: Path
) -> None:
    add(project, registry, "io.test.base@1.0.0")
    before = tree_state(project / ".ggen", project / "ggen.lock")
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        manifest = (registry / "io.test.app-1.0.0/gpack.toml").read_bytes()
        info = tarfile.TarInfo("gpack.toml")
        info.size = len(manifest)
        tar.addfile(info, __import__("io").BytesIO(manifest))
        link = tarfile.TarInfo("escape")
        link.type = tarfile.SYMTYPE
        link.linkname = "../../../../../../etc"
        tar.addfile(link)
    index_path = registry / "index.json"
    index = json.loads(index_path.read_text())
    entry = index["packs"]["io.test.app"]["versions"]["1.0.0"]
    (registry / entry["archive"]).write_bytes(evil.read_bytes())
    entry["sha256"] = __import__("hashlib").sha256(evil.read_bytes()).hexdigest()
    entry.pop("size", None)
    index_path.write_text(json.dumps(index))
    stderr = fail(project, registry, "add", "io.test.app")
    assert "points outside the package" in stderr
    assert tree_state(project / ".ggen", project / "ggen.lock") == before


def test_republished_archive_conflicts_with_the_lock(project: Path, registry: Path) -> None:
    add(project, registry, "io.test.base@1.0.0")
    before = tree_state(project / ".ggen", project / "ggen.lock")
    (registry / "io.test.base-1.0.0" / "extra.txt").write_text("changed\n")
    # Rebuilding from the changed directory publishes different bytes as the same version.
    (registry / "archives/io.test.base-1.0.0.tar.gz").unlink()
    build_registry(registry)
    stderr = fail(project, registry, "update")
    assert "ggen.lock pinned" in stderr
    assert "changed" in stderr
    assert tree_state(project / ".ggen", project / "ggen.lock") == before


def test_lock_file_with_garbage_is_a_clear_error(project: Path, registry: Path) -> None:
    (project / "ggen.lock").write_text("format = 1\n[[package]\n")
    stderr = fail(project, registry, "add", "io.test.app")
    assert "ggen.lock" in stderr
    assert "not valid TOML" in stderr


def test_concurrent_adds_are_serialised_by_the_lock(project: Path, registry: Path) -> None:
    # Two real processes add to the same project at once. Without the lock on .ggen the second
    # writer would drop the first one's request; with it, the lock ends up holding both.
    import os
    import subprocess
    import sys

    env = ggen_env(GGEN_CACHE_DIR=os.environ["GGEN_CACHE_DIR"])
    command = [sys.executable, "-m", "ggen_cli", "market", "add", "--registry", str(registry)]
    procs = [
        subprocess.Popen(
            [*command, spec],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for spec in ("io.test.app", "io.test.base@~1.1")
    ]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outcomes
    lock = read_lock(project / "ggen.lock")
    assert lock is not None
    assert lock.requires == {"io.test.app": "^1.0.0", "io.test.base": "~1.1"}
    assert ggen("market", "verify", "--project", str(project)).exit_code == 0
    assert not list((project / ".ggen").glob(".staging-*"))
