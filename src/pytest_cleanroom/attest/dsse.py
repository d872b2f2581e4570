"""DSSE envelopes (Dead Simple Signing Envelope, v1): PAE, canonical files, strict parsing.

A signature covers ``PAE(payloadType, payload)``, never the JSON around it. To make *every* byte
of an envelope file meaningful, the file is written in one canonical form and :func:`parse_envelope`
rejects anything else: unknown fields, non-canonical base64, other whitespace or key order. So one
changed byte either breaks the signature, the key lookup, or the canonical form.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PAYLOAD_TYPE = "application/vnd.in-toto+json"

_ENVELOPE_FIELDS = ("payloadType", "payload", "signatures")
_SIGNATURE_FIELDS = ("keyid", "sig")


class EnvelopeError(ValueError):
    """An envelope file is malformed or not in canonical form (it was edited)."""


@dataclass(frozen=True)
class Signature:
    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A parsed envelope: the raw payload bytes and the signatures over its PAE."""

    payload_type: str
    payload: bytes
    signatures: tuple[Signature, ...]

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def to_json(self) -> str:
        """The canonical file text (what :func:`parse_envelope` accepts, byte for byte)."""
        data = {
            "payloadType": self.payload_type,
            "payload": _b64(self.payload),
            "signatures": [{"keyid": s.keyid, "sig": _b64(s.sig)} for s in self.signatures],
        }
        return json.dumps(data, indent=2, ensure_ascii=True) + "\n"


def pae(payload_type: str, payload: bytes) -> bytes:
    """Pre-Authentication Encoding: ``DSSEv1 SP LEN(type) SP type SP LEN(body) SP body``."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


def sign_envelope(
    payload: bytes,
    signers: Sequence[tuple[str, Callable[[bytes], bytes]]],
    payload_type: str = PAYLOAD_TYPE,
) -> Envelope:
    """An envelope over ``payload`` signed by each ``(keyid, sign)`` pair."""
    message = pae(payload_type, payload)
    return Envelope(
        payload_type=payload_type,
        payload=payload,
        signatures=tuple(Signature(keyid, sign(message)) for keyid, sign in signers),
    )


def parse_envelope(text: str | bytes) -> Envelope:
    """Parse an envelope file, insisting on the canonical form :meth:`Envelope.to_json` writes."""
    try:
        raw = text.decode("utf-8") if isinstance(text, bytes) else text
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EnvelopeError(f"not valid JSON ({exc})") from None
    except RecursionError:
        raise EnvelopeError("not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise EnvelopeError("not a JSON object")
    _exact_fields(data, _ENVELOPE_FIELDS, "envelope")
    payload_type, payload_b64, raw_sigs = (data[k] for k in _ENVELOPE_FIELDS)
    if not isinstance(payload_type, str):
        raise EnvelopeError("payloadType is not a string")
    if not isinstance(payload_b64, str):
        raise EnvelopeError("payload is not a string")
    if not isinstance(raw_sigs, list) or not raw_sigs:
        raise EnvelopeError("signatures is not a non-empty list")
    signatures = []
    for index, entry in enumerate(raw_sigs):
        if not isinstance(entry, dict):
            raise EnvelopeError(f"signatures[{index}] is not an object")
        _exact_fields(entry, _SIGNATURE_FIELDS, f"signatures[{index}]")
        keyid, sig = entry["keyid"], entry["sig"]
        if not isinstance(keyid, str) or not isinstance(sig, str):
            raise EnvelopeError(f"signatures[{index}] keyid and sig must be strings")
        signatures.append(Signature(keyid, _unb64(sig, f"signatures[{index}].sig")))
    envelope = Envelope(payload_type, _unb64(payload_b64, "payload"), tuple(signatures))
    if envelope.to_json() != raw:
        raise EnvelopeError("not in the canonical form it was written in (the file was edited)")
    return envelope


def _exact_fields(data: dict[str, object], expected: tuple[str, ...], where: str) -> None:
    if tuple(data) != expected:
        unknown = sorted(set(data) - set(expected))
        missing = [k for k in expected if k not in data]
        problems = []
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        if unknown:
            problems.append(f"unexpected {', '.join(unknown)}")
        if not problems:
            problems.append(f"fields out of order (expected {', '.join(expected)})")
        raise EnvelopeError(f"{where}: {'; '.join(problems)}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, where: str) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise EnvelopeError(f"{where} is not valid base64 ({exc})") from None
    if _b64(data) != text:  # unused low bits set: another text for the same bytes
        raise EnvelopeError(f"{where} is not canonical base64")
    return data
