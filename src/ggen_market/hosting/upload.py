"""``ggen market publish --registry https://...``: the client side of the upload protocol.

The token comes from the environment (``$GGEN_REGISTRY_TOKEN``, or the variable a configured
registry's ``token_env`` names) and is sent only in the ``Authorization`` header: never printed,
never over plain ``http://`` to another machine. TLS certificates are always verified (a private
CA is given with ``SSL_CERT_FILE``). Connection failures and 502/503/504 answers are retried; a
retried publish is safe because the server answers "already published" for the same bytes.
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlparse

from .protocol import ARCHIVE_FIELD, INFO_PATH, PROTOCOL, PUBLISH_PATH, TOKEN_ENV, UploadError

if TYPE_CHECKING:
    import httpx

    from ..config import MarketConfig

#: Pauses before the second and third attempt of a request.
RETRY_PAUSES = (0.5, 1.5)
_RETRIED_STATUSES = frozenset({502, 503, 504})


def is_http(url: str) -> bool:
    """Whether ``--registry`` names an HTTP registry (then publishing uploads)."""
    return urlparse(url).scheme in ("http", "https")


def base_url(url: str) -> str:
    """The registry's root: the URL itself (with a final ``/``), or the folder of its index."""
    if urlparse(url).path.endswith(".json"):
        return url.rsplit("/", 1)[0] + "/"
    return url if url.endswith("/") else url + "/"


def find_token(url: str, config: MarketConfig) -> str:
    """The upload token for ``url``: the ``token_env`` variable of the configured registry with
    that URL, else ``$GGEN_REGISTRY_TOKEN``; an :class:`UploadError` naming both when unset."""
    root = base_url(url)
    named = next((s.token_env for s in config.registries
                  if s.token_env and is_http(s.url) and base_url(s.url) == root), None)  # fmt: skip
    variable = named or TOKEN_ENV
    token = os.environ.get(variable, "").strip()
    if token:
        return token
    where = (
        f"${variable} (named by token_env of its [[market.registries]] entry) is empty"
        if named
        else f"set ${TOKEN_ENV}, or name the variable holding it with token_env in the"
        " [[market.registries]] entry of ggen.toml for this URL"
    )
    raise UploadError(f"publishing to {root} needs the registry's upload token: {where}")


def check_transport(url: str) -> None:
    """Refuse to send a token over plain HTTP to anything but this machine."""
    parsed = urlparse(url)
    if parsed.scheme == "https" or _loopback(parsed.hostname or ""):
        return
    raise UploadError(
        f"--registry {url}: refusing to send the upload token over plain http:// to"
        f" {parsed.hostname}; use https:// (plain http is accepted for 127.0.0.1 and localhost)"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class HttpTarget:
    """An HTTP registry to publish to, with its token (kept out of every message)."""

    url: str
    token: str
    timeout: float
    pauses: tuple[float, ...] = RETRY_PAUSES

    @classmethod
    def open(cls, url: str, config: MarketConfig) -> HttpTarget:
        check_transport(url)
        return cls(base_url(url), find_token(url, config), config.timeout)

    def info(self) -> dict[str, Any]:
        """``GET api/v1/registry``: the protocol, the size cap and the trusted key ids."""
        answer = self._json(self._request("GET", INFO_PATH), f"GET {INFO_PATH}")
        if answer.get("protocol") != PROTOCOL:
            raise UploadError(
                f"registry {self.url}: speaks upload protocol {answer.get('protocol')!r}, this"
                f" ggen speaks {PROTOCOL}"
            )
        return answer

    def check_accepts(self, keyid: str, size: int) -> None:
        """Before validating: the token is accepted, the key trusted, the archive not too big."""
        info = self.info()
        trusted = [str(k) for k in info.get("trusted_keys", [])]
        if keyid not in trusted:
            listed = ", ".join(k[:16] for k in trusted) or "none"
            raise UploadError(
                f"registry {self.url}: does not trust the signing key {keyid[:16]} (it trusts"
                f" {listed}); ask its operator to add your public key (--trusted-key)"
            )
        cap = info.get("max_upload_bytes")
        if isinstance(cap, int) and size > cap:
            raise UploadError(
                f"registry {self.url}: the archive ({size} bytes) is larger than the"
                f" {cap} bytes this registry accepts"
            )

    def publish(
        self, pack_id: str, version: str, data: bytes, envelope: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``POST api/v1/publish``: the archive and its statement; the server's JSON answer."""
        from ..archive import sha256_bytes

        fields = {
            "id": pack_id,
            "version": version,
            "sha256": sha256_bytes(data),
            "statement": json.dumps(envelope, ensure_ascii=True),
        }
        files = {ARCHIVE_FIELD: (f"{pack_id}-{version}.tar.gz", data, "application/gzip")}
        response = self._request("POST", PUBLISH_PATH, data=fields, files=files)
        return self._json(response, f"publish {pack_id}@{version}")

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        url = urljoin(self.url, path)
        headers = {"Authorization": f"Bearer {self.token}", "User-Agent": "ggen-market"}
        problem, attempts = "", len(self.pauses) + 1
        for pause in (*self.pauses, None):
            try:
                with httpx.Client(timeout=httpx.Timeout(self.timeout), verify=True) as client:
                    response = client.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                problem = _describe(exc, self.timeout)
                if "CERTIFICATE_VERIFY_FAILED" in str(exc):
                    raise UploadError(f"registry {self.url}: {problem}") from None
            else:
                if response.status_code not in _RETRIED_STATUSES:
                    return response
                problem = f"HTTP {response.status_code} ({_error_text(response)})"
            if pause is None:
                break
            time.sleep(pause)
        raise UploadError(
            f"registry {self.url}: {method} {path} failed after {attempts} attempts: {problem};"
            " nothing was published"
        )

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        status = response.status_code
        if status in (200, 201):
            try:
                data = json.loads(response.content)
            except ValueError:
                data = None
            if isinstance(data, dict):
                return data
            raise UploadError(f"registry {self.url}: {what}: the answer is not a JSON object")
        raise UploadError(f"registry {self.url}: {what}: {_refusal(status, response)}")


_HINTS: dict[int, Callable[[str], str]] = {
    401: lambda e: f"{e}; the registry wants a token (set ${TOKEN_ENV} or token_env)",
    403: lambda e: f"{e}; the token was refused (check it is the registry's current one)",
    404: lambda e: f"{e}; this URL has no upload endpoint (is it a `ggen market serve` registry?)",
    413: lambda e: f"{e}; the archive is over the registry's size cap",
}


def _refusal(status: int, response: httpx.Response) -> str:
    message = f"refused with HTTP {status}: {_error_text(response)}"
    hint = _HINTS.get(status)
    return hint(message) if hint else message


def _error_text(response: httpx.Response) -> str:
    try:
        data = json.loads(response.content)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])[:2000]
    text = response.content[:300].decode("utf-8", "replace").strip()
    return text or response.reason_phrase


def _describe(exc: Exception, timeout: float) -> str:
    import httpx

    if "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return (
            f"TLS verification failed ({exc}); the server's certificate is not trusted here:"
            " give its CA with SSL_CERT_FILE=ca.pem (verification is never turned off)"
        )
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {timeout:g} s (timed out)"
    return f"{type(exc).__name__}: {exc}"
