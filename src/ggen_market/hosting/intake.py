"""What ``ggen market serve`` checks before an uploaded version enters the index.

In order, each refusal an :class:`IntakeError` with its HTTP status and nothing written: the form
(fields, file name ``<id>-<version>.tar.gz``, id and version well-formed), the archive's sha256
against the one sent, the statement (a trusted key's signature, a passing validation of exactly
this id, version and digest), the manifest inside the archive, then, under the registry's lock,
the version's absence (versions are immutable; the same bytes again is "already published").
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..archive import sha256_bytes
from ..builder import ARCHIVE_DIR, archive_name
from ..errors import MarketError
from ..ids import check_id
from ..index import INDEX_NAME, parse_index
from ._multipart import Part
from .protocol import ARCHIVE_FIELD, FIELDS, IntakeError

if TYPE_CHECKING:
    from pytest_cleanroom.attest.keys import VerifyingKey

    from ..manifest import Manifest

_THREAD_LOCK = threading.Lock()


@dataclass(frozen=True)
class Accepted:
    """A version the registry holds after the upload (``already``: it held it before)."""

    pack_id: str
    version: str
    sha256: str
    archive: str
    keyid: str
    already: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "id": self.pack_id,
            "version": self.version,
            "sha256": self.sha256,
            "archive": self.archive,
            "keyid": self.keyid,
            "already_published": self.already,
        }


@dataclass(frozen=True)
class Upload:
    """The checked fields of a publish form."""

    pack_id: str
    version: str
    data: bytes
    sha256: str
    envelope: dict[str, Any]


def read_form(parts: dict[str, Part]) -> Upload:
    """The upload a form describes; any missing, extra or malformed field is a 400."""
    unknown = sorted(set(parts) - {*FIELDS, ARCHIVE_FIELD})
    missing = [f for f in (*FIELDS, ARCHIVE_FIELD) if f not in parts]
    if unknown or missing:
        raise IntakeError(400, f"form fields: missing {missing}, unknown {unknown}")
    text = {f: parts[f].data.decode("utf-8", "replace") for f in FIELDS}
    try:
        pack_id = check_id(text["id"])
    except ValueError as exc:
        raise IntakeError(400, f"id: {exc}") from None
    version = _version(text["version"])
    expected = f"{pack_id}-{version}.tar.gz"
    if parts[ARCHIVE_FIELD].filename != expected:
        raise IntakeError(
            400, f"archive: the file must be named {expected!r}, not"
            f" {parts[ARCHIVE_FIELD].filename!r}"
        )  # fmt: skip
    data = parts[ARCHIVE_FIELD].data
    actual = sha256_bytes(data)
    if text["sha256"] != actual:
        raise IntakeError(
            400, f"archive: received {len(data)} bytes with sha256 {actual}, but the form says"
            f" {text['sha256'][:64]!r} (damaged in transit?); nothing was published"
        )  # fmt: skip
    try:
        envelope = json.loads(text["statement"])
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict):
        raise IntakeError(400, "statement: not a JSON object (a DSSE envelope)")
    return Upload(pack_id, version, data, actual, envelope)


def _version(value: str) -> str:
    from ..versions import parse_version

    try:
        canonical = str(parse_version(value))
    except MarketError as exc:
        raise IntakeError(400, f"version: {exc}") from None
    if canonical != value:
        raise IntakeError(400, f"version: write it as {canonical!r}")
    return value


def accept(registry: Path, upload: Upload, keys: Sequence[VerifyingKey]) -> Accepted:
    """Check ``upload``'s statement and manifest, then add it to ``registry`` atomically."""
    from ..trust.publish import publish_version
    from ..trust.statement import StatementError, read_statement

    label = f"{upload.pack_id}@{upload.version}"
    try:
        found = read_statement(upload.envelope, pack_id=upload.pack_id, version=upload.version,
                               sha256=upload.sha256, keys=keys)  # fmt: skip
    except StatementError as exc:
        raise IntakeError(422, f"{exc}; nothing was published") from None
    manifest = _manifest(upload)
    rel = archive_name(upload.pack_id, upload.version)
    with registry_lock(registry):
        if _published(registry, upload, label):
            return Accepted(upload.pack_id, upload.version, upload.sha256, rel, found.keyid, True)
        _check_archive_slot(registry, rel)
        try:
            publish_version(registry, manifest, upload.data, upload.envelope)
        except MarketError as exc:
            raise IntakeError(409, str(exc)) from None
    return Accepted(upload.pack_id, upload.version, upload.sha256, rel, found.keyid, False)


def _manifest(upload: Upload) -> Manifest:
    from ..trust.validate import ValidationSetupError, peek_manifest

    with tempfile.TemporaryDirectory(prefix="ggen-intake-") as tmp:
        try:
            manifest = peek_manifest(upload.data, Path(tmp) / "peek", "the uploaded archive")
        except ValidationSetupError as exc:
            raise IntakeError(400, str(exc)) from None
    if (manifest.id, manifest.version) != (upload.pack_id, upload.version):
        raise IntakeError(
            400, f"the archive's gpack.toml is {manifest.id}@{manifest.version}, not"
            f" {upload.pack_id}@{upload.version}"
        )  # fmt: skip
    return manifest


def read_packs(registry: Path) -> dict[str, Any]:
    """The registry's index as parsed packs (empty when it has none yet)."""
    path = registry / INDEX_NAME
    if not path.is_file():
        return {}
    return dict(parse_index(path.read_bytes(), str(path)).packs)


def _published(registry: Path, upload: Upload, label: str) -> bool:
    entry = read_packs(registry).get(upload.pack_id)
    if entry is None or upload.version not in entry.versions:
        return False
    sha = entry.versions[upload.version].sha256
    if sha != upload.sha256:
        raise IntakeError(
            409, f"{label}: already published with another archive (sha256 {sha}); versions"
            " are immutable: publish a new version"
        )  # fmt: skip
    return True


def _check_archive_slot(registry: Path, rel: str) -> None:
    """``archives/`` is a directory this registry made (no link), and the file is not there."""
    folder = registry / ARCHIVE_DIR
    try:
        os.mkdir(folder, 0o755)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            why = f"{folder}: not a directory (a link?); refusing to write through it"
            raise IntakeError(500, why) from None
    if os.path.lexists(registry / rel):
        raise IntakeError(
            409, f"{registry / rel}: a file the index does not list is in the way; the operator"
            " must remove it"
        )  # fmt: skip


@contextlib.contextmanager
def registry_lock(registry: Path) -> Iterator[None]:
    """Publishes to ``registry`` one at a time: this process's threads, and other processes
    (``flock`` on the registry directory itself, so no lock file is written)."""
    with _THREAD_LOCK:
        fd = os.open(registry, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
