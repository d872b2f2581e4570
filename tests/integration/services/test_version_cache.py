"""Server binaries' ``--version`` answers are remembered across runs, and asked again when the
binary changes or the cache cannot be trusted."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pytest_cleanroom.services.version_cache import CACHE_FILE, version_output


def fake_binary(path: Path, version: str, calls: Path) -> Path:
    """An executable that prints ``version`` and appends a line to ``calls`` each time it runs."""
    path.write_text(f"#!/bin/sh\necho run >> '{calls}'\necho '{version}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def ask(program: Path) -> str:
    import subprocess

    return subprocess.run([str(program)], capture_output=True, text=True, check=False).stdout


def runs(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_a_second_run_reads_the_answer_without_running_the_binary(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    program = fake_binary(tmp_path / "redis-server", "Redis server v=7.0.15", calls)
    cache = tmp_path / "cache"
    assert version_output(program, ask, cache) == "Redis server v=7.0.15\n"
    assert version_output(program, ask, cache) == "Redis server v=7.0.15\n"
    assert runs(calls) == 1
    entry = json.loads((cache / CACHE_FILE).read_text())[str(program.resolve())]
    assert entry["output"] == "Redis server v=7.0.15\n"


def test_a_replaced_binary_is_asked_again(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    program = fake_binary(tmp_path / "postgres", "postgres (PostgreSQL) 15.1", calls)
    cache = tmp_path / "cache"
    version_output(program, ask, cache)
    # An upgrade: a new file in its place (new inode, other size).
    program.unlink()
    fake_binary(program, "postgres (PostgreSQL) 16.10", calls)
    assert version_output(program, ask, cache) == "postgres (PostgreSQL) 16.10\n"
    assert runs(calls) == 2


def test_a_symlink_shares_the_answer_of_its_target(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    program = fake_binary(tmp_path / "redis-server-7", "v=7.2.4", calls)
    link = tmp_path / "redis-server"
    link.symlink_to(program)
    cache = tmp_path / "cache"
    assert version_output(program, ask, cache) == version_output(link, ask, cache)
    assert runs(calls) == 1


@pytest.mark.parametrize("damage", ["not json {", "[1, 2]", '{"x": 1}'])
def test_a_damaged_cache_is_ignored_and_rewritten(tmp_path: Path, damage: str) -> None:
    calls = tmp_path / "calls"
    program = fake_binary(tmp_path / "redis-server", "v=7.0.15", calls)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / CACHE_FILE).write_text(damage)
    assert version_output(program, ask, cache) == "v=7.0.15\n"
    assert version_output(program, ask, cache) == "v=7.0.15\n"
    assert runs(calls) == 1


def test_an_unwritable_cache_still_answers(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    program = fake_binary(tmp_path / "redis-server", "v=7.0.15", calls)
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # the cache directory cannot be created below a file
    assert version_output(program, ask, blocker / "cache") == "v=7.0.15\n"
    assert version_output(program, ask, blocker / "cache") == "v=7.0.15\n"
    assert runs(calls) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".versions-")]


def test_a_binary_that_prints_nothing_is_not_remembered(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    program = tmp_path / "broken"
    program.write_text(f"#!/bin/sh\necho run >> '{calls}'\nexit 1\n")
    program.chmod(0o755)
    cache = tmp_path / "cache"
    assert version_output(program, ask, cache) == ""
    assert version_output(program, ask, cache) == ""
    assert runs(calls) == 2
    assert not (cache / CACHE_FILE).exists()


def test_a_missing_binary_is_asked_directly(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "postgres"
    asked: list[Path] = []

    def record(program: Path) -> str:
        asked.append(program)
        return ""

    assert version_output(missing, record, tmp_path / "cache") == ""
    assert asked == [missing]
    assert not os.path.exists(tmp_path / "cache")
