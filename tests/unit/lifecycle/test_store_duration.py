"""A stored entry keeps how long its task took to build it, through the remote cache too."""

from __future__ import annotations

import json
from pathlib import Path

from ggen_lifecycle.cache import LocalCache
from ggen_lifecycle.remote_cache import RemoteCache, RemoteSettings

KEY = "cd" * 32


def built(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    (work / "out").mkdir(parents=True)
    (work / "out" / "a.txt").write_text("a\n")
    (work / "log").write_bytes(b"built\n")
    return work


def stored_duration(cache: LocalCache) -> object:
    return json.loads((cache.directory / KEY / "meta.json").read_text())["duration"]


def test_the_local_cache_records_the_duration(tmp_path: Path) -> None:
    work = built(tmp_path)
    local = LocalCache(tmp_path / "cache", 10**9)
    local.store(KEY, work, ["out/a.txt"], work / "log", {"phase": "build"}, duration=2.25)
    assert stored_duration(local) == 2.25


def test_the_remote_cache_passes_the_duration_to_its_local_cache(tmp_path: Path) -> None:
    work = built(tmp_path)
    local = LocalCache(tmp_path / "cache", 10**9)
    # read-only: storing keeps the entry locally and uploads nothing (no server is needed)
    settings = RemoteSettings(
        url="http://127.0.0.1:9",
        token=None,
        team=None,
        team_id=None,
        mode="read-only",
        signature_key=None,
        timeout=1.0,
    )
    warnings: list[str] = []
    remote = RemoteCache(settings, warnings.append, local)
    remote.store(KEY, work, ["out/a.txt"], work / "log", {"phase": "build"}, duration=1.5)
    assert stored_duration(local) == 1.5
    entry = remote.lookup(KEY)
    assert entry is not None
    assert entry.meta["duration"] == 1.5
    assert warnings == []
