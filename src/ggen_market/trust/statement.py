"""Signed validation statements: an in-toto Statement v1 about exactly one archive digest.

The predicate (``https://pytest-cleanroom.dev/attestations/validation/v1``) names the gpack, its
version, the archive's sha256, the policy (name and digest), every step's outcome and the tool's
version. It travels in a DSSE envelope signed with ed25519, in the registry's index beside the
version it is about; ``ggen attest verify FILE --key KEY.pub`` checks a saved one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pytest_cleanroom.attest import dsse
from pytest_cleanroom.attest.keys import SigningKey, VerifyingKey
from pytest_cleanroom.attest.statement import STATEMENT_TYPE, VALIDATION, canonical_json

from ..errors import MarketError

KIND = "gpack"
PASSED = "PASSED"


class StatementError(MarketError):
    """A validation statement that is missing, forged, or about something else."""


def archive_name(pack_id: str, version: str) -> str:
    """The subject's name: the archive file ``<id>-<version>.tar.gz``."""
    return f"{pack_id}-{version}.tar.gz"


def sign_statement(statement: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    """A DSSE envelope over ``statement``, as the JSON object an index or a file holds."""
    envelope = dsse.sign_envelope(canonical_json(dict(statement)), [(key.keyid, key.sign)])
    data: dict[str, Any] = json.loads(envelope.to_json())
    return data


@dataclass(frozen=True)
class Validated:
    """What a statement that checked out says: who signed it, when, under which policy."""

    keyid: str
    trusted: bool
    validated_on: str
    policy: str
    result: str

    def to_json(self) -> dict[str, Any]:
        return {
            "keyid": self.keyid,
            "trusted": self.trusted,
            "validated_on": self.validated_on,
            "policy": self.policy,
            "result": self.result,
        }


def read_statement(
    envelope: Mapping[str, Any],
    *,
    pack_id: str,
    version: str,
    sha256: str,
    keys: Sequence[VerifyingKey] = (),
) -> Validated:
    """Check ``envelope`` is a passing validation of exactly ``pack_id@version`` with ``sha256``.

    With ``keys``, one of them must have signed it (``trusted``). Without, no signature can be
    checked: ``trusted`` is False and only the content is reported (``ggen market info`` shows
    it so). Raises :class:`StatementError` naming what is wrong.
    """
    label = f"{pack_id}@{version}: validation statement"
    try:
        parsed = dsse.parse_envelope(json.dumps(dict(envelope), indent=2, ensure_ascii=True) + "\n")
    except dsse.EnvelopeError as exc:
        raise StatementError(f"{label}: {exc}") from None
    signer = parsed.signatures[0].keyid
    trusted = False
    if keys:
        by_id = {k.keyid: k for k in keys}
        good = [s for s in parsed.signatures if s.keyid in by_id]
        if not good:
            names = ", ".join(s.keyid[:16] for s in parsed.signatures)
            raise StatementError(f"{label}: signed by {names}, which is not a trusted key")
        signer, trusted = good[0].keyid, True
        if not by_id[signer].verify(good[0].sig, parsed.pae()):
            raise StatementError(f"{label}: the signature of key {signer[:16]} does not verify")
    try:
        data = json.loads(parsed.payload)
        predicate = data["predicate"]
        subject = data["subject"][0]
        facts = (data["_type"], data["predicateType"], predicate["kind"])
        pack = (predicate["pack"]["id"], predicate["pack"]["version"])
        digest = subject["digest"]["sha256"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise StatementError(f"{label}: not a validation statement ({exc!r})") from None
    if facts != (STATEMENT_TYPE, VALIDATION, KIND):
        raise StatementError(f"{label}: not a gpack validation statement ({facts[1]!r})")
    if pack != (pack_id, version):
        raise StatementError(f"{label}: it is about {pack[0]}@{pack[1]}")
    if digest != sha256 or predicate["archive"]["sha256"] != sha256:
        raise StatementError(
            f"{label}: it is about the archive sha256 {digest}, not {sha256}; the archive was"
            " changed after validation (validate and publish it again)"
        )
    if predicate.get("result") != PASSED:
        raise StatementError(f"{label}: the validation did not pass ({predicate.get('result')})")
    policy = predicate.get("policy", {})
    return Validated(
        keyid=signer,
        trusted=trusted,
        validated_on=str(predicate.get("validatedOn", "")),
        policy=f"{policy.get('name')} ({policy.get('digest')})",
        result=PASSED,
    )
