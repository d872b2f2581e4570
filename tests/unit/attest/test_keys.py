"""ed25519 keys: what openssl makes is accepted; every wrong key file gets one error naming it."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pytest_cleanroom.attest.keys import KeyFileError, SigningKey, VerifyingKey, write_key_pair
from tests.conftest import require_binary


def test_sign_and_verify_and_a_stable_keyid() -> None:
    key = SigningKey.generate()
    signature = key.sign(b"message")
    assert key.public.verify(signature, b"message")
    assert not key.public.verify(signature, b"messagE")
    assert not SigningKey.generate().public.verify(signature, b"message")
    again = SigningKey.from_pem(key.pem())
    assert again.keyid == key.keyid
    assert len(key.keyid) == 64
    assert VerifyingKey.from_pem(key.public.pem()).keyid == key.keyid
    assert SigningKey.from_raw(key.raw()).keyid == key.keyid


def test_a_key_made_by_openssl_is_accepted(tmp_path: Path) -> None:
    openssl = require_binary("openssl", "apt-get install openssl")
    private = tmp_path / "k.pem"
    public = tmp_path / "k.pub"
    subprocess.run([openssl, "genpkey", "-algorithm", "ed25519", "-out", private], check=True)
    subprocess.run([openssl, "pkey", "-in", private, "-pubout", "-out", public], check=True)
    key = SigningKey.load(private)
    assert VerifyingKey.load(public).keyid == key.keyid
    # And openssl verifies our signature over a message.
    message = tmp_path / "msg"
    message.write_bytes(b"DSSEv1 1 t 2 {}")
    (tmp_path / "sig").write_bytes(key.sign(message.read_bytes()))
    subprocess.run(
        [
            openssl,
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            public,
            "-rawin",
            "-in",
            message,
            "-sigfile",
            tmp_path / "sig",
        ],
        check=True,
        capture_output=True,
    )


def test_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=rf"{tmp_path}/absent.pem: cannot read the signing key"):
        SigningKey.load(tmp_path / "absent.pem")


def test_garbage_is_named_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text("not a key\n")
    with pytest.raises(KeyFileError, match=rf"{path}: not a PEM ed25519 private key.*keygen"):
        SigningKey.load(path)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "an RSA"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "an EC"),
    ],
)
def test_a_key_of_another_algorithm_is_refused(tmp_path: Path, make: object, name: str) -> None:
    other = make()  # type: ignore[operator]
    path = tmp_path / "key.pem"
    path.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(
        KeyFileError, match=rf"{path}: is {name} private key; an ed25519 private key is required"
    ):
        SigningKey.load(path)


def test_public_key_given_as_signing_key_and_the_reverse(tmp_path: Path) -> None:
    key = SigningKey.generate()
    public = tmp_path / "k.pub"
    public.write_bytes(key.public.pem())
    private = tmp_path / "k.pem"
    private.write_bytes(key.pem())
    with pytest.raises(KeyFileError, match=rf"{public}: is a public key"):
        SigningKey.load(public)
    with pytest.raises(KeyFileError, match=rf"{private}: is a private key"):
        VerifyingKey.load(private)


def test_encrypted_key_needs_the_password_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = SigningKey.generate()
    path = tmp_path / "enc.pem"
    path.write_bytes(
        key._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    monkeypatch.delenv("CLEANROOM_SIGNING_KEY_PASSWORD", raising=False)
    with pytest.raises(KeyFileError, match=rf"{path}: .*encrypted.*CLEANROOM_SIGNING_KEY_PASSWORD"):
        SigningKey.load(path)
    monkeypatch.setenv("CLEANROOM_SIGNING_KEY_PASSWORD", "s3cret")
    assert SigningKey.load(path).keyid == key.keyid
    monkeypatch.setenv("CLEANROOM_SIGNING_KEY_PASSWORD", "wrong")
    with pytest.raises(KeyFileError, match=rf"{path}"):
        SigningKey.load(path)


def test_write_key_pair_is_private_and_never_overwrites(tmp_path: Path) -> None:
    key = SigningKey.generate()
    public = write_key_pair(key, tmp_path / "signing")
    assert public == tmp_path / "signing.pub"
    assert stat.S_IMODE((tmp_path / "signing").stat().st_mode) == 0o600
    assert SigningKey.load(tmp_path / "signing").keyid == VerifyingKey.load(public).keyid
    with pytest.raises(KeyFileError, match="already exists"):
        write_key_pair(SigningKey.generate(), tmp_path / "signing")
    assert SigningKey.load(tmp_path / "signing").keyid == key.keyid
