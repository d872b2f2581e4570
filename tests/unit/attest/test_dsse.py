"""DSSE: PAE as the spec defines it, and envelope files in which every byte matters."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pytest_cleanroom.attest import dsse
from pytest_cleanroom.attest.keys import SigningKey


def test_pae_matches_the_dsse_specification_example() -> None:
    # The worked example of the DSSE v1 protocol document.
    assert (
        dsse.pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_pae_counts_bytes_not_characters() -> None:
    assert dsse.pae("t/\u00e9", "\u00e9".encode()) == b"DSSEv1 4 t/\xc3\xa9 2 \xc3\xa9"


def test_signature_covers_pae_and_verifies_with_plain_cryptography() -> None:
    key = SigningKey.generate()
    envelope = dsse.sign_envelope(b'{"a":1}', [(key.keyid, key.sign)])
    parsed = dsse.parse_envelope(envelope.to_json())
    assert parsed == envelope
    public = Ed25519PublicKey.from_public_bytes(_raw_public(key))
    # Verify independently of our code: the message is the PAE, not the JSON.
    public.verify(parsed.signatures[0].sig, dsse.pae(dsse.PAYLOAD_TYPE, b'{"a":1}'))
    data = json.loads(envelope.to_json())
    assert data["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(data["payload"]) == b'{"a":1}'
    assert data["signatures"][0]["keyid"] == key.keyid


def _raw_public(key: SigningKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    loaded = serialization.load_pem_public_key(key.public.pem())
    assert isinstance(loaded, Ed25519PublicKey)
    return loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _verifies(text: bytes, key: SigningKey) -> bool:
    try:
        envelope = dsse.parse_envelope(text)
    except dsse.EnvelopeError:
        return False
    mine = [s for s in envelope.signatures if s.keyid == key.keyid]
    return (
        envelope.payload_type == dsse.PAYLOAD_TYPE
        and bool(mine)
        and all(key.public.verify(s.sig, envelope.pae()) for s in mine)
    )


def test_every_single_byte_change_of_an_envelope_file_is_rejected() -> None:
    key = SigningKey.generate()
    payload = json.dumps({"_type": "https://in-toto.io/Statement/v1", "subject": []}).encode()
    original = dsse.sign_envelope(payload, [(key.keyid, key.sign)]).to_json().encode()
    assert _verifies(original, key)
    for offset in range(len(original)):
        for flip in (0x01, 0x20):
            changed = bytearray(original)
            changed[offset] ^= flip
            assert not _verifies(bytes(changed), key), f"byte {offset} ^ {flip:#x} went unnoticed"


def test_truncation_and_appended_bytes_are_rejected() -> None:
    key = SigningKey.generate()
    text = dsse.sign_envelope(b"{}", [(key.keyid, key.sign)]).to_json().encode()
    assert not _verifies(text[:-2], key)
    assert not _verifies(text + b" ", key)
    assert not _verifies(text + b"\n", key)


def test_base64_with_unused_bits_set_is_not_canonical() -> None:
    key = SigningKey.generate()
    envelope = dsse.sign_envelope(b"A", [(key.keyid, key.sign)])  # "QQ==": two unused bits
    text = envelope.to_json().replace('"QQ=="', '"QR=="')
    assert base64.b64decode("QR==") == b"A"  # the same bytes, another text
    with pytest.raises(dsse.EnvelopeError, match="canonical base64"):
        dsse.parse_envelope(text)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(extra=1), "unexpected extra"),
        (lambda d: d.pop("signatures"), "missing signatures"),
        (lambda d: d["signatures"][0].update(note="x"), "unexpected note"),
        (lambda d: d.update(signatures=[]), "non-empty list"),
        (lambda d: d.update(payload=7), "payload is not a string"),
    ],
)
def test_structural_edits_are_named(edit: object, message: str) -> None:
    key = SigningKey.generate()
    data = json.loads(dsse.sign_envelope(b"{}", [(key.keyid, key.sign)]).to_json())
    edit(data)  # type: ignore[operator]
    with pytest.raises(dsse.EnvelopeError, match=message):
        dsse.parse_envelope(json.dumps(data, indent=2) + "\n")


def test_reformatted_json_is_rejected_even_though_it_means_the_same() -> None:
    key = SigningKey.generate()
    text = dsse.sign_envelope(b"{}", [(key.keyid, key.sign)]).to_json()
    compact = json.dumps(json.loads(text), separators=(",", ":"))
    with pytest.raises(dsse.EnvelopeError, match="canonical form"):
        dsse.parse_envelope(compact)


def test_not_json_is_named() -> None:
    with pytest.raises(dsse.EnvelopeError, match="not valid JSON"):
        dsse.parse_envelope(b"\xff\xfe")
    with pytest.raises(dsse.EnvelopeError, match="not a JSON object"):
        dsse.parse_envelope("[]")
