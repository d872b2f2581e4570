"""Splitting a collection into shards: complete, disjoint, balanced, stable; K/N and engines."""

from __future__ import annotations

import hashlib

import pytest

from pytest_cleanroom.shard import partition
from pytest_cleanroom.shard.spec import ShardSpecError, from_environment, parse, resolve

TESTS = [f"tests/test_{m}.py::test_{i}" for m in "abcdefgh" for i in range(25)]
DURATIONS = {n: 0.1 + int(hashlib.sha256(n.encode()).hexdigest(), 16) % 7 * 0.3 for n in TESTS}


@pytest.mark.parametrize("total", [1, 2, 3, 7, 250])
def test_shards_are_disjoint_complete_and_in_collection_order(total: int) -> None:
    parts = [partition.select(TESTS, DURATIONS, k, total) for k in range(1, total + 1)]
    flat = [nodeid for part in parts for nodeid in part]
    assert flat == TESTS  # every test once, contiguous parts in collection order


def test_shards_are_balanced_by_recorded_durations() -> None:
    durations = {n: (5.0 if n.startswith("tests/test_a.py") else 0.1) for n in TESTS}
    parts = [partition.select(TESTS, durations, k, 4) for k in range(1, 5)]
    loads = [sum(durations[n] for n in part) for part in parts]
    biggest = max(durations.values())
    assert max(loads) - min(loads) <= 2 * biggest
    assert len(parts[0]) < len(parts[3])  # the slow tests share out over fewer tests


def test_adding_a_test_moves_only_tests_next_to_the_cuts() -> None:
    before = partition.shard_of_each(TESTS, DURATIONS, 4)
    added = [*TESTS[:60], "tests/test_c.py::test_new", *TESTS[60:]]
    after = partition.shard_of_each(added, DURATIONS, 4)
    old_owner = dict(zip(TESTS, before, strict=True))
    moved = [n for n, new in zip(added, after, strict=True) if old_owner.get(n, new) != new]
    assert len(moved) <= 3  # at most a test or so at each of the three cuts


def test_unknown_tests_count_as_the_mean_and_nothing_recorded_splits_by_count() -> None:
    assert partition.estimates(["a", "b"], {"a": 3.0}) == [3.0, 3.0]
    parts = [partition.select(TESTS, {}, k, 4) for k in range(1, 5)]
    assert [len(p) for p in parts] == [50, 50, 50, 50]


def test_the_digests_name_the_collection_and_the_durations_used() -> None:
    assert partition.collection_digest(TESTS) == partition.collection_digest(TESTS[::-1])
    assert partition.collection_digest(TESTS) != partition.collection_digest(TESTS[1:])
    unused = {**DURATIONS, "elsewhere::test": 9.0}
    assert partition.durations_digest(unused, TESTS) == partition.durations_digest(DURATIONS, TESTS)


@pytest.mark.parametrize(
    ("text", "expected"), [("1/1", (1, 1)), ("2/4", (2, 4)), (" 3 / 3 ", (3, 3))]
)
def test_k_of_n(text: str, expected: tuple[int, int]) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("0/3", "not between 1 and 3"), ("4/3", "not between"), ("1/0", "at least 1"), ("x", "K/N")],
)
def test_impossible_shards_are_refused(text: str, message: str) -> None:
    with pytest.raises(ShardSpecError, match=message):
        parse(text)


def test_auto_reads_the_engines_variables() -> None:
    job = {"JOB_COMPLETION_INDEX": "0", "CLEANROOM_SHARD_COUNT": "3"}
    assert from_environment(job) == (1, 3, "JOB_COMPLETION_INDEX")
    gitlab = {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2"}
    assert from_environment(gitlab) == (2, 2, "CI_NODE_INDEX")
    with pytest.raises(ShardSpecError, match="CLEANROOM_SHARD_COUNT"):
        from_environment({"JOB_COMPLETION_INDEX": "0"})
    with pytest.raises(ShardSpecError, match="not between"):
        from_environment({"JOB_COMPLETION_INDEX": "3", "CLEANROOM_SHARD_COUNT": "3"})
    with pytest.raises(ShardSpecError, match="found no shard variables"):
        from_environment({})


def test_the_run_id_comes_from_the_option_then_the_ci() -> None:
    github = {"GITHUB_RUN_ID": "77", "GITHUB_RUN_ATTEMPT": "2"}
    assert resolve("1/2", None, github).run == "github:77-2"
    assert resolve("1/2", "mine", github).run == "mine"
    assert resolve("1/2", None, {"CI_PIPELINE_ID": "5"}).run == "gitlab:5"
    assert resolve("1/2", None, {"CLEANROOM_SHARD_RUN": "k8s-uid", **github}).run == "k8s-uid"
    assert resolve("1/2", None, {}).run is None
