"""A tampered cache entry never writes outside the project, nor anything the phase does not
declare, nor a setuid file: it is a miss, reported once, and the task runs instead."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ggen_lifecycle.config import Project
from ggen_lifecycle.runner import Runner, RunOptions, RunSummary

from .helpers import project_from

BUILD = """
[lifecycle.build]
command = "mkdir -p dist && echo built > dist/app.txt"
inputs = ["src/**"]
outputs = ["dist/**"]
"""


def run(project: Project) -> RunSummary:
    return Runner(project, RunOptions(jobs=1)).run(["build"])


def only_entry(root: Path) -> Path:
    entries = [p for p in (root / ".ggen/cache").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1
    return entries[0]


def tamper(entry: Path, change: Callable[[dict[str, Any]], None]) -> None:
    meta_path = entry / "meta.json"
    meta = json.loads(meta_path.read_text())
    change(meta)
    meta_path.write_text(json.dumps(meta))


def record_for(path: Path, mode: int = 0o644) -> dict[str, Any]:
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "mode": mode}


@pytest.fixture
def built(tmp_path: Path) -> tuple[Project, Path, Path]:
    """A project whose build is cached, and a victim file outside it."""
    root = tmp_path / "project"
    project = project_from(root, BUILD, {"src/a.c": "int a;"})
    assert run(project).results[0].cache == "miss"
    victim = tmp_path / "victim"
    victim.write_text("precious")
    victim.chmod(0o600)
    return project, only_entry(root), victim


def assert_miss_with_one_warning(summary: RunSummary, fragment: str) -> None:
    (result,) = summary.results
    assert (result.status, result.cache) == ("success", "miss")  # the task ran instead
    about_cache = [w for w in summary.warnings if "cache entry" in w]
    assert len(about_cache) == 1, summary.warnings
    assert fragment in about_cache[0]


def test_absolute_output_path_restores_nothing_outside(built: tuple[Project, Path, Path]) -> None:
    project, entry, victim = built
    # The entry's own copy is the victim: its sha256 matches, so only the path check can refuse.
    tamper(entry, lambda m: m["outputs"].update({str(victim): record_for(victim, 0o4755)}))
    summary = run(project)
    assert_miss_with_one_warning(summary, "bad record")
    assert victim.read_text() == "precious"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o600
    # The tampered entry was removed; the one stored after the task ran is clean.
    assert set(json.loads((entry / "meta.json").read_text())["outputs"]) == {"dist/app.txt"}


def test_dotdot_output_path_restores_nothing_outside(built: tuple[Project, Path, Path]) -> None:
    project, entry, victim = built
    (entry / "out/dist/sub").mkdir()
    shutil.copy(victim, entry / "out/dist/sub/evil")
    tamper(entry, lambda m: m["outputs"].update({"dist/../../victim": record_for(victim)}))
    assert_miss_with_one_warning(run(project), "bad record")
    assert victim.read_text() == "precious"


def test_setuid_mode_is_refused(built: tuple[Project, Path, Path]) -> None:
    project, entry, _ = built
    tamper(entry, lambda m: m["outputs"]["dist/app.txt"].update(mode=0o6755))
    assert_miss_with_one_warning(run(project), "bad mode")
    app = project.root / "dist/app.txt"
    assert stat.S_IMODE(app.stat().st_mode) & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX) == 0


def test_output_the_phase_does_not_declare_is_refused(built: tuple[Project, Path, Path]) -> None:
    project, entry, _ = built
    source = project.root / "src/a.c"
    (entry / "out/src").mkdir()
    (entry / "out/src/a.c").write_text("int backdoor;")
    tamper(entry, lambda m: m["outputs"].update({"src/a.c": record_for(entry / "out/src/a.c")}))
    assert_miss_with_one_warning(run(project), "does not declare")
    assert source.read_text() == "int a;"


def test_link_inside_the_entry_is_refused(built: tuple[Project, Path, Path]) -> None:
    project, entry, victim = built
    stored = entry / "out/dist/app.txt"
    stored.unlink()
    stored.symlink_to(victim)  # same content as the record says: only the link check refuses
    tamper(entry, lambda m: m["outputs"].update({"dist/app.txt": record_for(victim)}))
    assert_miss_with_one_warning(run(project), "not a regular file inside the entry")
    assert (project.root / "dist/app.txt").read_text() == "built\n"


def test_link_in_the_project_is_not_written_through(
    built: tuple[Project, Path, Path], tmp_path: Path
) -> None:
    project, _, _ = built
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(project.root / "dist")
    (project.root / "dist").symlink_to(outside)  # planted between two runs
    summary = run(project)
    (result,) = summary.results
    assert result.cache == "miss"  # not restored; the command itself ran
    assert [w for w in summary.warnings if "symbolic link" in w]
    # The hit wrote nothing there: only the command (which the user wrote) did.
    assert sorted(os.listdir(outside)) == ["app.txt"]
    assert not [n for n in os.listdir(outside) if "ggen-restore" in n]


def test_a_good_entry_still_restores_all_outputs(built: tuple[Project, Path, Path]) -> None:
    project, _, _ = built
    shutil.rmtree(project.root / "dist")
    summary = run(project)
    assert summary.results[0].cache == "hit"
    assert (project.root / "dist/app.txt").read_text() == "built\n"
    assert summary.warnings == []
