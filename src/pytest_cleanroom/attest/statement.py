"""in-toto Statements v1: SLSA provenance v1 for one test, the test-result predicate for a run.

Only plain dicts and the standard library here; signing is :mod:`.dsse` and :mod:`.keys`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..result import RunResult
    from .digests import WorkspaceChanges

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE = "https://slsa.dev/provenance/v1"
TEST_RESULT = "https://in-toto.io/attestation/test-result/v0.1"
#: ggen's validations: of a gpack before publishing, of a project before a production deploy.
VALIDATION = "https://pytest-cleanroom.dev/attestations/validation/v1"
BUILD_TYPE = "https://pytest-cleanroom.dev/attestations/cleanroom-test/v1"
BUILDER_ID = "https://pytest-cleanroom.dev/builder/pytest-cleanroom"

# Subject used when a test's commands produced no file: the whole workspace tree.
WORKSPACE_TREE_SUBJECT = "workspace-tree"
KIND_ANNOTATION = "cleanroom.kind"

Json = dict[str, Any]


@dataclass(frozen=True)
class Builder:
    """Who produced the attestation: the tool's and its runtime's versions, and the run's id."""

    run_id: str
    versions: Mapping[str, str]

    @classmethod
    def current(cls, run_id: str) -> Builder:
        import pytest

        from .. import __version__

        return cls(
            run_id=run_id,
            versions={
                "pytest-cleanroom": __version__,
                "pytest": pytest.__version__,
                "python": platform.python_version(),
            },
        )

    @property
    def id(self) -> str:
        return f"{BUILDER_ID}@v{self.versions['pytest-cleanroom']}"


@dataclass(frozen=True)
class AttestedTest:
    """Everything one test's provenance statement records."""

    nodeid: str
    results: Sequence[RunResult]
    workspace: str | None
    changes: WorkspaceChanges | None
    started_at: float
    finished_at: float
    policy_name: str | None = None
    policy_digest: str | None = None
    backend: str | None = None
    seed: int | None = None
    environment: Mapping[str, str] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def tool_versions() -> dict[str, str]:
    """The ``tool`` of a validation predicate: this distribution's and Python's versions."""
    from .. import __version__

    return {"ggen": __version__, "pytest-cleanroom": __version__,
            "python": platform.python_version()}  # fmt: skip


def canonical_json(data: Any) -> bytes:
    """Sorted keys, no whitespace, ASCII only (file names that are not UTF-8 survive as
    ``\\udcXX`` escapes): the bytes that are hashed and signed."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("ascii")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def environment_digest(environment: Mapping[str, str]) -> str:
    return "sha256:" + sha256_hex(canonical_json(dict(sorted(environment.items()))))


def rfc3339(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


def described(name: str, record: Mapping[str, Any]) -> Json:
    """A ResourceDescriptor for a JSON record: the record in annotations, its sha256 as digest."""
    return {
        "name": name,
        "digest": {"sha256": sha256_hex(canonical_json(record))},
        "annotations": dict(record),
    }


def statement(subjects: list[Json], predicate_type: str, predicate: Json) -> Json:
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def provenance_statement(test: AttestedTest, builder: Builder) -> Json:
    """The SLSA provenance v1 statement of one test's sandboxed commands."""
    results = list(test.results)
    first = results[0] if results else None
    # What the commands ran under (a command may have been given more than the cleanroom's
    # policy: it says so), else the cleanroom's policy.
    ran = sorted({(r.policy_name, r.policy_digest) for r in results})
    policy_name, policy_digest = ran[0] if len(ran) == 1 else (test.policy_name, test.policy_digest)
    if len(ran) > 1:
        policy_name, policy_digest = " | ".join(name for name, _ in ran), None
    environment = test.environment if test.environment is not None else _env(first)
    external: Json = {
        "test": test.nodeid,
        "commands": [{"argv": list(r.command), "cwd": r.cwd} for r in results],
        "policy": {"name": policy_name, "digest": policy_digest},
    }
    internal: Json = {
        "backend": test.backend or (first.backend if first else None),
        "limitsEnforcement": sorted({r.limits_enforcement or "none" for r in results}),
        "seed": test.seed if test.seed is not None else (first.seed if first else None),
        "environmentDigest": environment_digest(environment) if environment is not None else None,
        "workspace": test.workspace,
    }
    internal.update(test.extra)
    changes = test.changes
    dependencies = (
        [_file(rel, digest) for rel, digest in sorted(changes.inputs.items())] if changes else []
    )
    byproducts = [described(f"commands/{i}", _command_record(r)) for i, r in enumerate(results)]
    if changes is not None:
        byproducts.append(
            {
                "name": "workspace",
                "digest": {"sha256": changes.tree_digest().removeprefix("sha256:")},
                "annotations": {"files": len(changes.after), "removed": list(changes.removed)},
            }
        )
    predicate: Json = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": external,
            "internalParameters": internal,
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": builder.id, "version": dict(builder.versions)},
            "metadata": {
                "invocationId": f"{builder.run_id}/{test.nodeid}",
                "startedOn": rfc3339(test.started_at),
                "finishedOn": rfc3339(test.finished_at),
            },
            "byproducts": byproducts,
        },
    }
    return statement(_subjects(changes), SLSA_PROVENANCE, predicate)


def run_result_statement(
    *,
    passed: Sequence[str],
    warned: Sequence[str],
    failed: Sequence[str],
    envelopes: Mapping[str, str],
    configuration: Sequence[Json],
    url: str | None = None,
) -> Json:
    """The run-level statement: the in-toto test-result predicate over the run's envelopes.

    ``envelopes`` maps each per-test envelope file name to its sha256 (hex); they are the
    subjects, so removing, adding or editing one is caught when the run statement is verified.
    """
    result = "FAILED" if failed else "WARNED" if warned else "PASSED"
    predicate: Json = {
        "result": result,
        "configuration": list(configuration),
        "passedTests": sorted(passed),
        "warnedTests": sorted(warned),
        "failedTests": sorted(failed),
    }
    if url:
        predicate["url"] = url
    subjects = [{"name": name, "digest": {"sha256": envelopes[name]}} for name in sorted(envelopes)]
    return statement(subjects, TEST_RESULT, predicate)


def ci_run_url(environ: Mapping[str, str] = os.environ) -> str | None:
    """The CI run's URL when the environment tells it (GitHub Actions, GitLab CI)."""
    if all(k in environ for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")):
        return (
            f"{environ['GITHUB_SERVER_URL']}/{environ['GITHUB_REPOSITORY']}"
            f"/actions/runs/{environ['GITHUB_RUN_ID']}"
        )
    return environ.get("CI_JOB_URL") or None


def _subjects(changes: WorkspaceChanges | None) -> list[Json]:
    if changes is None:
        return []
    if changes.outputs:
        return [_file(rel, digest) for rel, digest in changes.outputs.items()]
    return [
        {
            "name": WORKSPACE_TREE_SUBJECT,
            "digest": {"sha256": changes.tree_digest().removeprefix("sha256:")},
            "annotations": {KIND_ANNOTATION: WORKSPACE_TREE_SUBJECT},
        }
    ]


def _file(rel: str, digest: str) -> Json:
    return {"name": rel, "digest": {"sha256": digest}}


def _env(result: RunResult | None) -> Mapping[str, str] | None:
    return result.environment if result is not None else None


def _command_record(result: RunResult) -> Json:
    return {
        "argv": list(result.command),
        "cwd": result.cwd,
        "exitCode": result.exit_code,
        "timedOut": result.timed_out,
        "limitExceeded": result.limit_exceeded,
        "durationSeconds": round(result.duration, 6),
        "peakMemoryBytes": result.peak_memory,
        "cpuTimeSeconds": None if result.cpu_time is None else round(result.cpu_time, 6),
        "backend": result.backend,
        "limitsEnforcement": result.limits_enforcement,
        "policy": result.policy_name,
        "policyDigest": result.policy_digest,
        "seed": result.seed,
        "environmentDigest": environment_digest(result.environment),
        "startedOn": rfc3339(result.started_at) if result.started_at else None,
        "stdoutSha256": sha256_hex(result.stdout_bytes),
        "stderrSha256": sha256_hex(result.stderr_bytes),
    }
