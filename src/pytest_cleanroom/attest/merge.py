"""``ggen attest merge``: one signed statement over all shards of a run, and its verification.

The merged directory holds a copy of each shard's attestation directory under
``shards/shard-K-of-N/``, and a ``run.intoto.json`` signed by the merging key: an in-toto
test-result statement whose subjects are the shards' run envelopes (by sha256) and whose
predicate lists every test's outcome, the shards, their keys, the policy digests and the seed.
``ggen attest verify`` on it checks that statement, every shard's own envelopes, and again that
the shards are the complete shards of one run: a shard missing, duplicated, taken from another
run, or a test counted twice, is an error.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import store
from .shards import ShardFacts, ShardReadError, check_shards, read_shard

SHARDS_DIR = "shards"
MERGED_ENTRY = "cleanroom-sharded-run"


class MergeError(Exception):
    """The shards cannot be merged; ``problems`` says every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class MergeResult:
    """What ``merge`` wrote."""

    directory: Path
    shards: list[ShardFacts]
    keyid: str
    files: list[str] = field(default_factory=list)


def _verified_shards(directories: Sequence[Path], shard_key: Path | None) -> list[ShardFacts]:
    from .verify import verify

    problems: list[str] = []
    shards: list[ShardFacts] = []
    for directory in directories:
        report = verify(directory, key=shard_key)
        if not report.ok:
            problems.extend(f"{directory}: {p}" for p in report.failures())
            continue
        try:
            shards.append(read_shard(directory))
        except ShardReadError as exc:
            problems.append(str(exc))
    if problems:
        raise MergeError(problems)
    return shards


def _outcomes(shards: Sequence[ShardFacts]) -> tuple[list[str], list[str], list[str]]:
    passed = sorted({n for s in shards for n in s.passed})
    warned = sorted({n for s in shards for n in s.warned})
    failed = sorted({n for s in shards for n in s.failed})
    return passed, warned, failed


def _merged_record(shards: Sequence[ShardFacts]) -> dict[str, Any]:
    first = shards[0]
    return {
        "run": first.shared("run"),
        "total": first.total,
        "collectionDigest": first.shared("collectionDigest"),
        "durationsDigest": first.shared("durationsDigest"),
        "collectedTests": first.record["collectedTests"],
        "seed": first.shared("seed"),
        "policyDigests": sorted({str(s.invocation.get("policyDigest")) for s in shards}),
        "shards": [
            {
                "index": s.index,
                "directory": f"{SHARDS_DIR}/{s.name}",
                "keyid": s.keyid,
                "selectedTests": len(s.selected),
                "passed": len(s.passed),
                "warned": len(s.warned),
                "failed": len(s.failed),
            }
            for s in sorted(shards, key=lambda s: s.index)
        ],
    }


def _copy_shard(shard: ShardFacts, target: Path) -> None:
    target.mkdir(parents=True)
    for entry in sorted(shard.directory.iterdir()):
        if entry.is_file() and not entry.is_symlink() and not entry.name.startswith("."):
            shutil.copyfile(entry, target / entry.name)


def merge(
    directories: Sequence[Path],
    out: Path,
    *,
    key_path: Path | None = None,
    shard_key: Path | None = None,
) -> MergeResult:
    """Verify the shards in ``directories`` and write their merged attestation into ``out``.

    Nothing is written when any shard fails to verify or the shards are not one complete run
    (:class:`MergeError` lists every problem). ``out`` must not exist or be empty.
    """
    from .attester import Attester
    from .keys import SigningKey
    from .merged_outputs import merge_durations, merge_junit, merge_reports
    from .statement import Builder, described

    shards = _verified_shards(directories, shard_key)
    problems = check_shards(shards)
    if problems:
        raise MergeError(problems)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MergeError([f"{out}: exists and is not an empty directory; give a new one"])
    key = SigningKey.load(key_path) if key_path is not None else SigningKey.generate()
    for shard in shards:
        _copy_shard(shard, out / SHARDS_DIR / shard.name)
    attester = Attester(out, key, Builder.current(str(shards[0].shared("run"))))
    if key_path is None:
        attester.write_public_key()
    passed, warned, failed = _outcomes(shards)
    subjects = {f"{SHARDS_DIR}/{s.name}/{store.RUN_ENVELOPE}": s.envelope_sha256 for s in shards}
    attester.attest_run(
        passed=passed,
        warned=warned,
        failed=failed,
        envelopes=subjects,
        configuration=[described(MERGED_ENTRY, _merged_record(shards))],
    )
    result = MergeResult(out, sorted(shards, key=lambda s: s.index), key.keyid)
    result.files.extend(merge_reports(result.shards, out))
    result.files.extend(merge_junit(result.shards, out))
    result.files.extend(merge_durations(result.shards, out))
    return result


def verify_merged(
    directory: Path,
    *,
    key: Path | None,
    shard_key: Path | None = None,
    progress: Callable[[Any], None] | None = None,
) -> Any:
    """The :class:`~.verify.Verification` of a merged directory (see the module docstring)."""
    from .verify import Verification, _check_envelope, _trusted_key, verify

    report = Verification(target=str(directory))
    trusted = _trusted_key(directory, key, report)
    if trusted is None:
        return report
    check, listed = _check_envelope(directory / store.RUN_ENVELOPE, trusted, None)
    report.checks.append(check)
    if listed is None:
        return report
    present = sorted(p.name for p in (directory / SHARDS_DIR).iterdir() if p.is_dir())
    expected = {name.split("/")[1]: digest for name, digest in listed.items()}
    for name in present:
        if name not in expected:
            report.errors.append(
                f"{directory / SHARDS_DIR / name}: a shard the merged statement does not list"
                " (added or duplicated after the merge)"
            )
    shards: list[ShardFacts] = []
    for name, digest in sorted(expected.items()):
        shard_dir = directory / SHARDS_DIR / name
        if not shard_dir.is_dir():
            report.errors.append(f"{shard_dir}: missing shard (listed by the merged statement)")
            continue
        sub = verify(shard_dir, key=shard_key)
        for sub_check in sub.checks:
            report.checks.append(sub_check)
            if progress is not None:
                progress(sub_check)
        report.errors.extend(sub.errors)
        try:
            facts = read_shard(shard_dir)
        except ShardReadError as exc:
            report.errors.append(str(exc))
            continue
        if facts.envelope_sha256 != digest:
            report.errors.append(
                f"{shard_dir / store.RUN_ENVELOPE}: not the shard statement that was merged"
                f" (sha256 {facts.envelope_sha256[:16]}..., merged {digest[:16]}...)"
            )
        shards.append(facts)
    report.errors.extend(check_shards(shards))
    union = _outcomes(shards)
    counted = check.summary or {}
    for label, tests in zip(("passed", "warned", "failed"), union, strict=True):
        if counted.get(label) != len(tests):
            report.errors.append(
                f"{directory / store.RUN_ENVELOPE}: counts {counted.get(label)} {label} tests,"
                f" the shards {len(tests)}"
            )
    return report
