"""Cache keys and entries: what changes a key, restore, corruption, size limit."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ggen_lifecycle.cache import Cache, compute_key
from ggen_lifecycle.files import HashMemo, expand, hash_files


def key(**changes: object) -> str:
    args: dict[str, object] = {
        "commands": ["make"],
        "env": {"A": "1"},
        "cwd": "pkg",
        "input_hashes": [("a.c", "11"), ("b.c", "22")],
        "dependency_keys": ["k1", "k2"],
    }
    args.update(changes)
    return compute_key(**args)  # type: ignore[arg-type]


def test_key_is_stable_and_order_independent() -> None:
    assert key() == key()
    assert key(input_hashes=[("b.c", "22"), ("a.c", "11")]) == key()
    assert key(dependency_keys=["k2", "k1"]) == key()
    assert len(key()) == 64


def test_key_changes_with_each_ingredient() -> None:
    base = key()
    assert key(commands=["make all"]) != base
    assert key(env={"A": "2"}) != base
    assert key(cwd="other") != base
    assert key(input_hashes=[("a.c", "11"), ("b.c", "23")]) != base
    assert key(input_hashes=[("a.c", "11"), ("c.c", "22")]) != base
    assert key(dependency_keys=["k1", "k3"]) != base


def test_expand_globs_with_exclusions(tmp_path: Path) -> None:
    for rel in ("src/a.py", "src/sub/b.py", "src/c.txt", ".git/x", "src/.ggen/y"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    found, unmatched = expand(tmp_path, ["src/**/*.py", "docs/*", "src/**", "!src/c.txt"])
    assert found == ["src/a.py", "src/sub/b.py"]
    assert unmatched == ["docs/*"]
    hashes = dict(hash_files(tmp_path, found))
    (tmp_path / "src/a.py").write_text("changed")
    assert dict(hash_files(tmp_path, found))["src/a.py"] != hashes["src/a.py"]


def make_entry(tmp_path: Path, cache: Cache, key_: str = "k" * 64) -> Path:
    work = tmp_path / "work"
    (work / "dist").mkdir(parents=True, exist_ok=True)
    (work / "dist" / "app.js").write_text("console.log(1)\n")
    (work / "dist" / "run.sh").write_text("#!/bin/sh\n")
    (work / "dist" / "run.sh").chmod(0o755)
    log = tmp_path / "task.log"
    log.write_bytes(b"line 1\nline 2\n")
    cache.store(key_, work, ["dist/app.js", "dist/run.sh"], log, {"phase": "build"})
    return work


def test_store_lookup_restore(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache", 10**9)
    work = make_entry(tmp_path, cache)
    for rel in ("dist/app.js", "dist/run.sh"):
        (work / rel).unlink()
    entry = cache.lookup("k" * 64)
    assert entry is not None
    assert entry.log_path.read_bytes() == b"line 1\nline 2\n"
    assert cache.restore(entry, work) == ["dist/app.js", "dist/run.sh"]
    assert (work / "dist/app.js").read_text() == "console.log(1)\n"
    assert (work / "dist/run.sh").stat().st_mode & 0o777 == 0o755
    assert cache.lookup("0" * 64) is None


def test_tampered_output_is_detected_reported_and_removed(tmp_path: Path) -> None:
    warnings: list[str] = []
    cache = Cache(tmp_path / "cache", 10**9, warn=warnings.append)
    make_entry(tmp_path, cache)
    stored = tmp_path / "cache" / ("k" * 64) / "out" / "dist" / "app.js"
    data = bytearray(stored.read_bytes())
    data[0] ^= 1
    stored.write_bytes(bytes(data))
    assert cache.lookup("k" * 64) is None
    assert "corrupted" in warnings[0]
    assert "does not match its sha256" in warnings[0]
    assert not (tmp_path / "cache" / ("k" * 64)).exists()


def test_garbage_meta_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    warnings: list[str] = []
    cache = Cache(tmp_path / "cache", 10**9, warn=warnings.append)
    make_entry(tmp_path, cache)
    (tmp_path / "cache" / ("k" * 64) / "meta.json").write_text("{not json")
    assert cache.lookup("k" * 64) is None
    assert "meta.json unreadable" in warnings[0]


def test_meta_pointing_outside_the_entry_is_rejected(tmp_path: Path) -> None:
    warnings: list[str] = []
    cache = Cache(tmp_path / "cache", 10**9, warn=warnings.append)
    make_entry(tmp_path, cache)
    meta_path = tmp_path / "cache" / ("k" * 64) / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["outputs"]["../../escape"] = {"sha256": "0", "size": 0, "mode": 420}
    meta_path.write_text(json.dumps(meta))
    assert cache.lookup("k" * 64) is None
    assert warnings


def test_size_limit_evicts_least_recently_used(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache", 10**9)
    for name in ("a", "b", "c"):
        make_entry(tmp_path, cache, name * 64)
    sizes = [size for _, size, _ in cache.entries()]

    for age, name in enumerate(("b", "a", "c")):  # b oldest, then a, then c
        os.utime(tmp_path / "cache" / (name * 64) / "meta.json", (1000 + age, 1000 + age))
    cache.max_bytes = sum(sizes) - min(sizes) // 2  # one entry too many
    removed = cache.evict()
    assert removed == ["b" * 64]
    assert cache.lookup("a" * 64) is not None
    assert cache.clean()[0] == 2
    assert cache.entries() == []


def test_hash_memo_serves_unchanged_files_and_notices_rewrites(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("one")
    memo_path = tmp_path / "memo.json"
    memo = HashMemo(memo_path)
    memo.RECENT_NS = -(10**18)  # remember even files written just now
    real = memo.digest(target)
    memo.save()
    # a memo entry for this exact file identity is trusted without reading the file...
    data = json.loads(memo_path.read_text())
    data[str(target)][4] = "remembered"
    memo_path.write_text(json.dumps(data))
    again = HashMemo(memo_path)
    assert again.digest(target) == "remembered"
    # ...but a rewrite with the same size and a restored mtime changes ctime: re-read
    stat = target.stat()
    target.write_text("two")
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert again.digest(target) != "remembered"
    assert again.digest(target) != real


def test_hash_memo_never_remembers_fresh_files(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("one")
    memo = HashMemo(tmp_path / "memo.json")
    memo.digest(target)
    memo.save()
    assert not (tmp_path / "memo.json").exists()


def test_corrupted_hash_memo_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "memo.json").write_text("{{{")
    (tmp_path / "a.txt").write_text("x")
    assert len(HashMemo(tmp_path / "memo.json").digest(tmp_path / "a.txt")) == 64
