"""The run's attestation set-up: directory, signing key and run id, decided once on the controller.

Under pytest-xdist the controller prepares the directory and decides the key; each worker receives
the directory, the raw private key and the run id through ``workerinput`` (the execnet channel to
the worker process), so every envelope of the run is signed by the same key and no private key is
ever written beside the envelopes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .attester import Attester
from .keys import KeyFileError, SigningKey
from .statement import Builder
from .store import AttestDirError, prepare_directory


@dataclass
class AttestSession:
    """What every process of the run needs to write envelopes."""

    directory: Path
    key: SigningKey
    run_id: str
    key_source: str  # the key file, or "generated for this run"
    attester: Attester

    @classmethod
    def start(cls, directory: Path, key_path: Path | None) -> AttestSession:
        """On the controller: prepare ``directory`` and load or make the key (usage errors)."""
        if key_path is not None:
            try:
                key = SigningKey.load(key_path)
            except KeyFileError as exc:
                raise pytest.UsageError(f"--cleanroom-signing-key: {exc}") from None
            source = str(key_path)
        else:
            key, source = SigningKey.generate(), "generated for this run"
        try:
            prepare_directory(directory)
        except AttestDirError as exc:
            raise pytest.UsageError(f"--cleanroom-attest: {exc}") from None
        session = cls._build(directory, key, uuid.uuid4().hex, source)
        session.attester.write_public_key()
        return session

    @classmethod
    def from_workerinput(cls, data: dict[str, Any]) -> AttestSession:
        key = SigningKey.from_raw(bytes.fromhex(data["key"]))
        return cls._build(Path(data["directory"]), key, data["run_id"], data["key_source"])

    def to_workerinput(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "key": self.key.raw().hex(),
            "run_id": self.run_id,
            "key_source": self.key_source,
        }

    @classmethod
    def _build(cls, directory: Path, key: SigningKey, run_id: str, source: str) -> AttestSession:
        attester = Attester(directory, key, Builder.current(run_id))
        return cls(directory, key, run_id, source, attester)
