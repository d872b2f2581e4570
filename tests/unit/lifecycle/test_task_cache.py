"""The runner and the dry-run planner use the TaskCache they are given, and docs/lifecycle.md's
example of one runs as written."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from ggen_lifecycle.cache import Entry, LocalCache, TaskCache
from ggen_lifecycle.config import Project
from ggen_lifecycle.runner import Runner, RunOptions

from .helpers import project_from

DOC = Path(__file__).resolve().parents[3] / "docs" / "lifecycle.md"
BUILD = """
[lifecycle.build]
command = "mkdir -p dist && cat src/a.txt > dist/app.txt"
inputs = ["src/**"]
outputs = ["dist/**"]
"""


def cache_entries(root: Path) -> list[str]:
    cache = root / ".ggen" / "cache"
    return (
        sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))
        if cache.is_dir()
        else []
    )


class Recording(TaskCache):
    """A local cache that notes every call (and can claim to hold every key, for the plan)."""

    def __init__(self, local: LocalCache, *, claims_all: bool = False) -> None:
        self.local = local
        self.claims_all = claims_all
        self.calls: list[str] = []

    def lookup(self, key: str) -> Entry | None:
        self.calls.append("lookup")
        return self.local.lookup(key)

    def would_hit(self, key: str) -> bool:
        self.calls.append("would_hit")
        return self.claims_all

    def restore(self, entry: Entry, cwd: Path, *, root: Path, declared: Sequence[str]) -> list[str]:
        self.calls.append("restore")
        return self.local.restore(entry, cwd, root=root, declared=declared)

    def store(
        self,
        key: str,
        cwd: Path,
        outputs: Sequence[str],
        log: Path,
        info: Mapping[str, Any],
        *,
        duration: float = 0.0,
    ) -> None:
        self.calls.append("store")
        self.local.store(key, cwd, outputs, log, info)

    def discard(self, key: str) -> None:
        self.calls.append("discard")
        self.local.discard(key)


def local_cache(project: Project) -> LocalCache:
    return LocalCache(project.state_dir / "cache", project.spec.cache.max_bytes)


def test_a_run_looks_up_restores_and_stores_through_the_given_cache(tmp_path: Path) -> None:
    project = project_from(tmp_path / "p", BUILD, {"src/a.txt": "one\n"})
    cache = Recording(local_cache(project))
    summary = Runner(project, RunOptions(jobs=1), cache=cache).run(["build"])
    assert [r.cache for r in summary.results] == ["miss"]
    assert cache.calls == ["lookup", "store"]
    (tmp_path / "p" / "dist" / "app.txt").unlink()
    cache.calls.clear()
    summary = Runner(project, RunOptions(jobs=1), cache=cache).run(["build"])
    assert [r.cache for r in summary.results] == ["hit"]
    assert cache.calls == ["lookup", "restore"]
    assert (tmp_path / "p" / "dist" / "app.txt").read_text() == "one\n"


@pytest.mark.parametrize("claims_all", [True, False])
def test_the_dry_run_asks_the_cache_not_its_folders(tmp_path: Path, claims_all: bool) -> None:
    project = project_from(tmp_path / "p", BUILD, {"src/a.txt": "one\n"})
    Runner(project, RunOptions(jobs=1)).run(["build"])  # the local folder holds the entry now
    cache = Recording(local_cache(project), claims_all=claims_all)
    (step,) = Runner(project, RunOptions(), cache=cache).plan(["build"])
    assert step["cache"] == ("hit" if claims_all else "miss")
    assert cache.calls == ["would_hit"]


def test_the_read_only_cache_example_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("### The task cache") :]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block is not None
    project = project_from(tmp_path / "demo", BUILD, {"src/a.txt": "one\n"})
    monkeypatch.chdir(tmp_path)
    exec(compile(block.group(1), "lifecycle.md", "exec"), {"__name__": "doc"})
    assert capsys.readouterr().out == "[('build', 'miss')]\n"
    assert cache_entries(project.root) == []  # nothing stored
    Runner(project, RunOptions(jobs=1)).run(["build"])  # a writable run fills the cache
    stored = cache_entries(project.root)
    (project.root / "dist" / "app.txt").unlink()
    exec(compile(block.group(1), "lifecycle.md", "exec"), {"__name__": "doc"})
    assert capsys.readouterr().out == "[('build', 'hit')]\n"
    assert (project.root / "dist" / "app.txt").read_text() == "one\n"
    assert cache_entries(project.root) == stored
