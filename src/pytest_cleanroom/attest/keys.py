"""ed25519 signing and verifying keys (through ``cryptography``), with errors that name the file.

Private keys are PEM (PKCS#8, what ``openssl genpkey -algorithm ed25519`` writes); public keys are
PEM SubjectPublicKeyInfo. A key's id is the sha256 of its raw 32-byte public key, in hex.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import CleanroomError

PASSWORD_ENV = "CLEANROOM_SIGNING_KEY_PASSWORD"
MAKE_KEY_HINT = "make one with `ggen attest keygen KEY` or `openssl genpkey -algorithm ed25519`"


class KeyFileError(CleanroomError):
    """A key file is missing, unreadable, or not an ed25519 key of the expected kind."""


class VerifyingKey:
    """The public half: checks signatures."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.keyid = hashlib.sha256(raw).hexdigest()

    @classmethod
    def from_pem(cls, data: bytes, source: str = "<memory>") -> VerifyingKey:
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as exc:
            if b"PRIVATE KEY" in data:
                raise KeyFileError(
                    f"{source}: is a private key; pass the public half (the .pub file)"
                ) from None
            raise KeyFileError(f"{source}: not a PEM public key ({exc})") from None
        if not isinstance(key, Ed25519PublicKey):
            raise KeyFileError(
                f"{source}: is {_kind(key)} public key; an ed25519 public key is required"
            )
        return cls(key)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> VerifyingKey:
        return cls.from_pem(_read(path, "public key"), str(path))

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def pem(self) -> bytes:
        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class SigningKey:
    """The private half: signs; ``public`` verifies."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public = VerifyingKey(key.public_key())

    @property
    def keyid(self) -> str:
        return self.public.keyid

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_raw(cls, raw: bytes) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @classmethod
    def from_pem(
        cls, data: bytes, source: str = "<memory>", password: bytes | None = None
    ) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except TypeError:
            # cryptography raises TypeError when a password is missing or superfluous.
            if password is None:
                raise KeyFileError(
                    f"{source}: the private key is encrypted; set {PASSWORD_ENV} to its password"
                ) from None
            raise KeyFileError(
                f"{source}: the private key is not encrypted; unset {PASSWORD_ENV}"
            ) from None
        except (ValueError, UnsupportedAlgorithm) as exc:
            if b"PUBLIC KEY" in data:
                raise KeyFileError(
                    f"{source}: is a public key; the signing key must be the private half"
                ) from None
            raise KeyFileError(
                f"{source}: not a PEM ed25519 private key ({exc}); {MAKE_KEY_HINT}"
            ) from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyFileError(
                f"{source}: is {_kind(key)} private key; an ed25519 private key is required "
                f"({MAKE_KEY_HINT})"
            )
        return cls(key)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> SigningKey:
        """Read a PEM private key; a password, if any, from ``$CLEANROOM_SIGNING_KEY_PASSWORD``."""
        password = os.environ.get(PASSWORD_ENV)
        return cls.from_pem(
            _read(path, "signing key"), str(path), password.encode() if password else None
        )

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def raw(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def pem(self) -> bytes:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def write_key_pair(key: SigningKey, private_path: Path) -> Path:
    """Write ``private_path`` (mode 0600, created exclusively) and ``<private_path>.pub``."""
    public_path = private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(f"{path}: already exists; refusing to overwrite a key")
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.pem())
        public_path.write_bytes(key.public.pem())
    except BaseException:  # leave no half-written pair behind
        private_path.unlink(missing_ok=True)
        raise
    return public_path


def _kind(key: object) -> str:
    """``an RSA``, ``an EC``, ``a DSA``... from the key class's name."""
    name = type(key).__name__.removesuffix("PrivateKey").removesuffix("PublicKey") or "unknown"
    article = "an" if name[0] in "AEIOR" else "a"
    return f"{article} {name}"


def _read(path: str | os.PathLike[str], what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{os.fspath(path)}: cannot read the {what}: {exc.strerror}") from None
