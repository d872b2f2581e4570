"""A real ``ggen market serve`` process on 127.0.0.1 for the upload tests, and signed uploads."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from ggen_market.archive import sha256_bytes
from ggen_market.builder import pack_gpack
from ggen_market.trust.statement import sign_statement
from ggen_market.trust.validate import Check, ValidationReport
from pytest_cleanroom.attest.keys import SigningKey, write_key_pair
from tests.conftest import ggen_env

from .conftest import write_gpack

TOKEN = "test-token-0123456789abcdef"


@dataclass
class Served:
    """A running registry server: its URL, directory and process."""

    url: str
    root: Path
    process: subprocess.Popen[str]

    def log(self) -> str:
        """Everything the server printed (after it stopped)."""
        self.stop()
        out, err = self.process.communicate(timeout=10)
        return out + err

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        if self.process.poll() is None:
            self.process.kill()


@contextlib.contextmanager
def serve(root: Path, *args: str, token: str | None = TOKEN) -> Iterator[Served]:
    """``ggen market serve ROOT --port 0 ARGS --json``, with ``token`` in its environment."""
    env = ggen_env()
    if token:
        env["GGEN_REGISTRY_TOKEN"] = token
    process = subprocess.Popen(
        [sys.executable, "-m", "ggen_cli", "market", "serve", str(root), "--port", "0",
         "--json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert process.stdout is not None
    first = process.stdout.readline()
    served = Served("", root, process)
    try:
        if not first:
            raise AssertionError(f"the server did not start: {served.log()}")
        served.url = json.loads(first)["url"]
        yield served
    finally:
        served.stop()


def keypair(path: Path) -> SigningKey:
    """A new ed25519 key at ``path`` and ``path.pub``."""
    key = SigningKey.generate()
    write_key_pair(key, path)
    return key


def archive(root: Path, pack_id: str, version: str, text: str = "") -> bytes:
    """The archive of a small gpack (``text`` makes another archive of the same version)."""
    src = write_gpack(root / f"src-{len(list(root.glob('src-*')))}", pack_id, version,
                      files={"rdf/g.ttl": f"# {version} {text}\n"})  # fmt: skip
    return pack_gpack(src)[1]


def statement(
    key: SigningKey, data: bytes, pack_id: str, version: str, *, outcome: str = "passed"
) -> dict[str, Any]:
    """A validation statement about ``data`` signed by ``key``, as a validator would sign it."""
    report = ValidationReport(pack_id, version, sha256_bytes(data), len(data), "test")
    report.policy_name, report.policy_digest = "strict", "sha256:" + "0" * 64
    report.checks.append(Check("install", "install", outcome))
    return sign_statement(report.statement(), key)


def upload(
    url: str,
    data: bytes,
    envelope: dict[str, Any],
    *,
    pack_id: str,
    version: str,
    token: str | None = TOKEN,
    filename: str | None = None,
    sha256: str | None = None,
) -> httpx.Response:
    """One raw publish request, every field under the test's control."""
    fields = {
        "id": pack_id,
        "version": version,
        "sha256": sha256 or sha256_bytes(data),
        "statement": json.dumps(envelope),
    }
    name = filename or f"{pack_id}-{version}.tar.gz"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(url + "api/v1/publish", data=fields, headers=headers, timeout=30,
                      files={"archive": (name, data, "application/gzip")})  # fmt: skip
