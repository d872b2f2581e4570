"""The attestation directory: file names, the start-up write check, atomic writes."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from ..safe_write import write_output

ENVELOPE_SUFFIX = ".intoto.json"
RUN_ENVELOPE = "run" + ENVELOPE_SUFFIX
PUBLIC_KEY_FILE = "cleanroom-attest.pub"
_SLUG_LENGTH = 96


class AttestDirError(OSError):
    """The attestation directory cannot be created or written."""


def envelope_filename(nodeid: str) -> str:
    """A safe, unique file name for a test's envelope: a readable slug plus a hash of the nodeid.

    Only ``[A-Za-z0-9._-]``, never hidden, never ``run.intoto.json`` (the hash suffix sees to it).
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("._-")[:_SLUG_LENGTH] or "test"
    return f"{slug}-{hashlib.sha256(nodeid.encode()).hexdigest()[:12]}{ENVELOPE_SUFFIX}"


def prepare_directory(directory: Path) -> list[str]:
    """Create ``directory``, prove it is writable, and remove a previous run's attestation files.

    Returns the names removed. Raises :class:`AttestDirError` with the reason otherwise.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = _reason(exc, directory)
        raise AttestDirError(f"cannot write attestations to {directory}: {reason}") from None
    removed = []
    for entry in sorted(directory.iterdir()):
        ours = entry.name.endswith(ENVELOPE_SUFFIX) or entry.name == PUBLIC_KEY_FILE
        if ours and entry.is_file() and not entry.is_symlink():
            entry.unlink()
            removed.append(entry.name)
    return removed


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> str:
    """Write ``data`` to ``path`` (see :func:`~pytest_cleanroom.safe_write.write_output`);
    returns its sha256 hex."""
    write_output(path, data, mode=mode)
    return hashlib.sha256(data).hexdigest()


def _reason(exc: OSError, directory: Path) -> str:
    text = exc.strerror or str(exc)
    if exc.filename and os.fspath(exc.filename) != os.fspath(directory):
        text += f" ({exc.filename})"
    return text
