"""What each shard of a sharded run attested, and the checks that the shards make one run.

A shard's run statement (``run.intoto.json``) carries a ``cleanroom-shard`` configuration entry
(index, total, run id, the digest of the whole collection, the digest of the durations the split
used, the tests it selected) beside the ``pytest-invocation`` entry (seed, policy digest). The
shards of one run agree on all but the index and the selection; their indexes are 1..N, each
once; no test is selected twice; and together they selected exactly the collection.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import dsse, store
from .statement import TEST_RESULT

SHARD_ENTRY = "cleanroom-shard"
INVOCATION_ENTRY = "pytest-invocation"
#: What every shard of one run must have in common, and what each field means in a message.
SHARED = {
    "run": "run id",
    "total": "number of shards",
    "collectionDigest": "collection",
    "durationsDigest": "durations file",
    "seed": "seed",
}


class ShardReadError(ValueError):
    """A directory that holds no shard's run statement this tool wrote."""


@dataclass(frozen=True)
class ShardFacts:
    """One shard's run statement, read (its signature is checked by the caller)."""

    directory: Path
    record: dict[str, Any]
    invocation: dict[str, Any]
    passed: list[str]
    warned: list[str]
    failed: list[str]
    envelope_sha256: str
    keyid: str

    @property
    def index(self) -> int:
        return int(self.record["index"])

    @property
    def total(self) -> int:
        return int(self.record["total"])

    @property
    def selected(self) -> list[str]:
        return list(self.record["selectedTests"])

    @property
    def name(self) -> str:
        """The directory name the shard gets in a merged run: ``shard-K-of-N``."""
        return f"shard-{self.index}-of-{self.total}"

    def shared(self, field: str) -> Any:
        return self.invocation.get("seed") if field == "seed" else self.record.get(field)


def read_shard(directory: Path) -> ShardFacts:
    """The facts of the shard whose attestation directory is ``directory``."""
    path = directory / store.RUN_ENVELOPE
    try:
        raw = path.read_bytes()
        envelope = dsse.parse_envelope(raw)
        data = json.loads(envelope.payload)
        if data["predicateType"] != TEST_RESULT:
            raise ValueError(f"predicateType {data['predicateType']!r}")
        predicate = data["predicate"]
        entries = {e["name"]: e.get("annotations", {}) for e in predicate["configuration"]}
    except FileNotFoundError:
        raise ShardReadError(f"{path}: missing (was the shard's run interrupted?)") from None
    except (OSError, ValueError, KeyError, TypeError, dsse.EnvelopeError) as exc:
        raise ShardReadError(f"{path}: not a run statement this tool wrote ({exc})") from None
    if SHARD_ENTRY not in entries:
        raise ShardReadError(f"{path}: the run was not sharded (no --cleanroom-shard)")
    return ShardFacts(
        directory=directory,
        record=dict(entries[SHARD_ENTRY]),
        invocation=dict(entries.get(INVOCATION_ENTRY, {})),
        passed=list(predicate.get("passedTests", [])),
        warned=list(predicate.get("warnedTests", [])),
        failed=list(predicate.get("failedTests", [])),
        envelope_sha256=hashlib.sha256(raw).hexdigest(),
        keyid=envelope.signatures[0].keyid if envelope.signatures else "",
    )


def check_shards(shards: Sequence[ShardFacts]) -> list[str]:
    """Every reason ``shards`` are not the complete shards of one run (empty when they are)."""
    if not shards:
        return ["no shards given"]
    problems: list[str] = []
    first = shards[0]
    for field, meaning in SHARED.items():
        for shard in shards[1:]:
            if shard.shared(field) != first.shared(field):
                problems.append(
                    f"{shard.directory}: a shard from another run: its {meaning} "
                    f"({shard.shared(field)!r}) differs from {first.directory}'s "
                    f"({first.shared(field)!r})"
                )
    if first.shared("run") is None:
        problems.append(
            f"{first.directory}: the shards name no run (--cleanroom-shard-run or"
            " CLEANROOM_SHARD_RUN), so shards of another run cannot be told apart"
        )
    counts = Counter(shard.index for shard in shards)
    for index, count in sorted(counts.items()):
        if count > 1:
            where = ", ".join(str(s.directory) for s in shards if s.index == index)
            problems.append(f"shard {index}/{first.total} duplicated ({count} times: {where})")
    missing = [i for i in range(1, first.total + 1) if i not in counts]
    if missing:
        shown = ", ".join(f"{i}/{first.total}" for i in missing)
        problems.append(f"missing shard{'s' if len(missing) > 1 else ''}: {shown}")
    twice = _tests_counted_twice(shards, counts)
    problems.extend(twice)
    complete = not missing and not twice and len(counts) == len(shards)
    if complete and union_digest(shards) != first.shared("collectionDigest"):
        found = len({n for s in shards for n in s.selected})
        problems.append(
            f"the shards selected {found} tests, not the {first.record['collectedTests']}"
            " collected: some test ran in no shard"
        )
    return problems


def _tests_counted_twice(shards: Sequence[ShardFacts], counts: Counter[int]) -> list[str]:
    owners: dict[str, list[str]] = {}
    for shard in shards:
        if counts[shard.index] > 1:
            continue  # a duplicated shard is reported as such, not test by test
        for nodeid in set(shard.selected) | set(shard.passed + shard.warned + shard.failed):
            owners.setdefault(nodeid, []).append(shard.name)
    return [
        f"test {nodeid} counted twice: in {' and '.join(names)}"
        for nodeid, names in sorted(owners.items())
        if len(names) > 1
    ]


def union_digest(shards: Sequence[ShardFacts]) -> str:
    """The collection digest that the shards' selections add up to."""
    from ..shard.partition import collection_digest

    return collection_digest(sorted({n for s in shards for n in s.selected}))
