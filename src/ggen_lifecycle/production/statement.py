"""The signed statement of a production validation, and reading one back for the deploy gate.

An in-toto Statement v1 with the validation predicate (the same type ``ggen market validate``
writes; ``kind = "project"``): one subject per input file, the inputs' tree digest, the policy,
the backend, every step's outcome and resources, the readiness verdict and the tool's version.
Signed with ed25519 in a DSSE envelope by :mod:`pytest_cleanroom.attest`; ``ggen attest verify
FILE --key KEY.pub --workspace PROJECT`` checks it and every input file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ProductionValidationError, ValidationGateError

if TYPE_CHECKING:
    from pytest_cleanroom.attest.keys import SigningKey, VerifyingKey

    from .inputs import Inputs
    from .report import ProductionReport

KIND = "project"
DIRECTORY = Path(".ggen") / "validation"


def envelope_path(root: Path, environment: str) -> Path:
    """Where the last validation's signed statement of ``environment`` is kept."""
    return root / DIRECTORY / f"{environment}.intoto.json"


def report_path(root: Path, environment: str) -> Path:
    """Where the last validation's report (JSON) of ``environment`` is kept."""
    return root / DIRECTORY / f"{environment}.json"


def build_statement(report: ProductionReport, inputs: Inputs) -> dict[str, Any]:
    """The in-toto statement describing ``report``, about exactly ``inputs``."""
    from pytest_cleanroom.attest.statement import VALIDATION, rfc3339, statement, tool_versions

    predicate = {
        "kind": KIND,
        "result": report.result,
        "project": {"name": report.project, "environment": report.environment},
        "inputs": {"digest": report.inputs_digest, "files": report.input_files},
        "policy": {"name": report.policy_name, "digest": report.policy_digest},
        "backend": report.backend,
        "steps": [s.to_json() for s in report.steps],
        "readiness": report.verdict.to_dict(),
        "blockers": [b.to_json() for b in report.blockers],
        "tool": tool_versions(),
        "validatedOn": rfc3339(report.started_at),
    }
    subjects = [
        {"name": rel, "digest": {"sha256": digest}}
        for rel, digest in sorted(inputs.digests.items())
    ]
    return statement(subjects, VALIDATION, predicate)


def signed(statement: dict[str, Any], key: SigningKey) -> str:
    """The canonical DSSE envelope file text of ``statement`` signed by ``key``."""
    from pytest_cleanroom.attest import dsse
    from pytest_cleanroom.attest.statement import canonical_json

    return dsse.sign_envelope(canonical_json(statement), [(key.keyid, key.sign)]).to_json()


def load_signing_key(path: Path) -> SigningKey:
    from pytest_cleanroom.attest.keys import KeyFileError, SigningKey

    try:
        return SigningKey.load(path)
    except KeyFileError as exc:
        raise ProductionValidationError(f"--signing-key: {exc}") from None


def load_trusted_keys(root: Path, paths: Sequence[str], file: Path) -> list[VerifyingKey]:
    """``[validation.ENV] trusted_keys``, relative to the project root."""
    from pytest_cleanroom.attest.keys import KeyFileError, VerifyingKey

    keys = []
    for entry in paths:
        try:
            keys.append(VerifyingKey.load(root / entry))
        except KeyFileError as exc:
            raise ValidationGateError(
                f"[validation] trusted_keys: {exc}; fix the path or the key", file=file
            ) from None
    return keys


@dataclass(frozen=True)
class Attested:
    """What a verified statement says."""

    keyid: str
    result: str
    validated_on: str
    inputs_digest: str
    subjects: dict[str, str]
    blockers: list[str]


def read_statement(
    path: Path, keys: Sequence[VerifyingKey], *, project: str, environment: str
) -> Attested:
    """The statement at ``path`` if one of ``keys`` signed it and it is a validation of
    ``project`` for ``environment``; :class:`ValidationGateError` saying what is wrong."""
    from pytest_cleanroom.attest import dsse
    from pytest_cleanroom.attest.statement import STATEMENT_TYPE, VALIDATION
    from pytest_cleanroom.attest.verify import MAX_ENVELOPE_BYTES
    from pytest_cleanroom.host_files import read_regular

    try:
        envelope = dsse.parse_envelope(read_regular(path, max_bytes=MAX_ENVELOPE_BYTES))
    except FileNotFoundError:
        raise _refusal(path, "there is no signed validation", environment) from None
    except (OSError, dsse.EnvelopeError) as exc:
        why = f"the statement is unreadable or was edited ({exc})"
        raise _refusal(path, why, environment) from None
    by_id = {k.keyid: k for k in keys}
    mine = [s for s in envelope.signatures if s.keyid in by_id]
    if not mine:
        signers = ", ".join(s.keyid[:16] for s in envelope.signatures)
        raise _refusal(path, f"it is signed by {signers}, which is not a trusted key", environment)
    if not all(by_id[s.keyid].verify(s.sig, envelope.pae()) for s in mine):
        raise _refusal(
            path, "its signature does not verify (the statement was changed)", environment
        )
    try:
        data = json.loads(envelope.payload)
        predicate = data["predicate"]
        facts = (data["_type"], data["predicateType"], predicate["kind"])
        about = (predicate["project"]["name"], predicate["project"]["environment"])
        attested = Attested(
            keyid=mine[0].keyid,
            result=str(predicate["result"]),
            validated_on=str(predicate["validatedOn"]),
            inputs_digest=str(predicate["inputs"]["digest"]),
            subjects={str(s["name"]): str(s["digest"]["sha256"]) for s in data["subject"]},
            blockers=[str(b["reason"]) for b in predicate.get("blockers", [])],
        )
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        why = f"it is not a project validation statement ({exc!r})"
        raise _refusal(path, why, environment) from None
    if facts != (STATEMENT_TYPE, VALIDATION, KIND):
        raise _refusal(
            path, f"it is not a project validation statement ({facts[1]!r})", environment
        )
    if about != (project, environment):
        raise _refusal(path, f"it is about {about[0]} for {about[1]}", environment)
    return attested


def _refusal(path: Path, why: str, environment: str) -> ValidationGateError:
    return ValidationGateError(
        f"{path}: {why}; run `ggen lifecycle validate --env {environment} --signing-key KEY`",
    )
