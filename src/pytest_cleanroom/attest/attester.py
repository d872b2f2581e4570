"""Sign statements and write them as envelope files in the attestation directory."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import dsse, statement, store
from .keys import SigningKey


@dataclass(frozen=True)
class WrittenEnvelope:
    """An envelope file just written: its name in the directory and the sha256 of its bytes."""

    name: str
    sha256: str

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha256


class Attester:
    """Writes one envelope per test and the run's test-result envelope, all signed by ``key``."""

    def __init__(self, directory: Path, key: SigningKey, builder: statement.Builder) -> None:
        self.directory = directory
        self.key = key
        self.builder = builder

    def sign(self, data: statement.Json) -> dsse.Envelope:
        return dsse.sign_envelope(statement.canonical_json(data), [(self.key.keyid, self.key.sign)])

    def attest_test(self, test: statement.AttestedTest) -> WrittenEnvelope:
        data = statement.provenance_statement(test, self.builder)
        return self._write(store.envelope_filename(test.nodeid), data)

    def attest_run(
        self,
        *,
        passed: Sequence[str],
        warned: Sequence[str],
        failed: Sequence[str],
        envelopes: Mapping[str, str],
        configuration: Sequence[statement.Json],
        url: str | None = None,
    ) -> WrittenEnvelope:
        data = statement.run_result_statement(
            passed=passed,
            warned=warned,
            failed=failed,
            envelopes=envelopes,
            configuration=configuration,
            url=url,
        )
        return self._write(store.RUN_ENVELOPE, data)

    def write_public_key(self) -> Path:
        path = self.directory / store.PUBLIC_KEY_FILE
        store.write_atomic(path, self.key.public.pem())
        return path

    def _write(self, name: str, data: statement.Json) -> WrittenEnvelope:
        text = self.sign(data).to_json().encode("ascii")
        return WrittenEnvelope(name, store.write_atomic(self.directory / name, text))
