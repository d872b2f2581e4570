"""Splitting a collection into N contiguous parts of about equal recorded duration.

Tests keep their collection order, so a module's tests (and its module-scoped fixtures) stay
together, and a test added or removed moves only the tests near the cuts next to it. A test with
no recorded duration counts as the mean of the recorded ones (1 s when none is recorded). Every
shard computes the same parts from the same collection and durations, so the parts never overlap
and together hold every test.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence


def estimates(nodeids: Sequence[str], durations: Mapping[str, float]) -> list[float]:
    """Each test's expected seconds: recorded, else the mean of the recorded ones."""
    known = [durations[n] for n in nodeids if n in durations]
    fallback = sum(known) / len(known) if known else 1.0
    return [max(0.0, durations.get(n, fallback)) for n in nodeids]


def shard_of_each(nodeids: Sequence[str], durations: Mapping[str, float], total: int) -> list[int]:
    """The 1-based shard of each test: the part of ``[0, sum)`` holding the test's midpoint."""
    weights = estimates(nodeids, durations)
    whole = sum(weights) or 1.0
    shards: list[int] = []
    elapsed = 0.0
    for weight in weights:
        middle = elapsed + weight / 2
        shards.append(min(total, int(middle / whole * total) + 1))
        elapsed += weight
    return shards


def select(
    nodeids: Sequence[str], durations: Mapping[str, float], index: int, total: int
) -> list[str]:
    """The tests of shard ``index`` (1-based) of ``total``, in collection order."""
    owners = shard_of_each(nodeids, durations, total)
    return [n for n, owner in zip(nodeids, owners, strict=True) if owner == index]


def collection_digest(nodeids: Sequence[str]) -> str:
    """sha256 of the sorted node ids: what every shard of one run must agree on."""
    return hashlib.sha256("\n".join(sorted(nodeids)).encode()).hexdigest()


def durations_digest(durations: Mapping[str, float], nodeids: Sequence[str]) -> str:
    """sha256 of the recorded durations of ``nodeids`` (those the split depended on)."""
    used = {n: durations[n] for n in sorted(nodeids) if n in durations}
    return hashlib.sha256(json.dumps(used, sort_keys=True).encode()).hexdigest()
