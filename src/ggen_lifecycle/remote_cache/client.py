"""A client of the Turborepo Remote Cache HTTP API: ``GET``/``HEAD``/``PUT /v8/artifacts/:hash``.

Every request has one deadline (the configured timeout) covering connecting, waiting and
transferring, so a server that stops answering or drips bytes cannot hold a run up for longer.
Anything but a clean answer raises :class:`RemoteUnavailableError`; the caller decides what that
means (it never fails a run).
"""

from __future__ import annotations

import http.client
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

from .settings import RemoteSettings

CHUNK = 64 * 1024


class RemoteUnavailableError(Exception):
    """The server could not be reached, was too slow, or answered something unusable."""


@dataclass(frozen=True)
class Download:
    """An artifact's bytes and its ``x-artifact-tag`` header (``None`` when absent)."""

    body: bytes
    tag: str | None


class TurboApiClient:
    """Requests to one server for one team, each bounded by ``settings.timeout``."""

    def __init__(self, settings: RemoteSettings) -> None:
        self.settings = settings
        parts = urlsplit(settings.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        query = {"teamId": settings.team_id} if settings.team_id else {}
        if settings.team:
            query["slug"] = settings.team
        self._query = ("?" + urlencode(query)) if query else ""

    def _path(self, key: str) -> str:
        return f"{self._base}/v8/artifacts/{quote(key, safe='')}{self._query}"

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": "ggen-lifecycle"}
        if self.settings.token:
            headers["Authorization"] = f"Bearer {self.settings.token}"
        return headers

    def _connection(self, deadline: float) -> http.client.HTTPConnection:
        timeout = max(0.05, deadline - time.monotonic())
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _exchange(
        self, method: str, key: str, body: bytes | None, headers: dict[str, str], limit: int
    ) -> tuple[int, dict[str, str], bytes]:
        deadline = time.monotonic() + self.settings.timeout
        connection = self._connection(deadline)
        try:
            connection.request(method, self._path(key), body=body, headers=headers)
            response = connection.getresponse()
            received = {k.lower(): v for k, v in response.getheaders()}
            data = b"" if method == "HEAD" else self._read(connection, response, deadline, limit)
            return response.status, received, data
        except (OSError, http.client.HTTPException) as exc:
            raise RemoteUnavailableError(f"{method} failed: {exc or type(exc).__name__}") from None
        finally:
            connection.close()

    def _read(
        self,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        deadline: float,
        limit: int,
    ) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RemoteUnavailableError(
                    f"answer not complete within {self.settings.timeout:g}s"
                )
            if connection.sock is not None:
                connection.sock.settimeout(left)  # each wait only as long as the deadline allows
            block = response.read1(CHUNK)
            if not block:
                return b"".join(parts)
            size += len(block)
            if size > limit:
                raise RemoteUnavailableError(f"answer larger than {limit} bytes")
            parts.append(block)

    @staticmethod
    def _unexpected(method: str, status: int, data: bytes) -> RemoteUnavailableError:
        excerpt = " ".join(data[:200].decode("utf-8", errors="replace").split())[:120]
        refused = " (the token was refused)" if status in (401, 403) else ""
        return RemoteUnavailableError(f"{method} answered HTTP {status}{refused}: {excerpt}")

    def exists(self, key: str) -> bool:
        """``HEAD``: whether the server holds an artifact for ``key``."""
        status, _, _ = self._exchange("HEAD", key, None, self._headers(), 0)
        if status == 404:
            return False
        if status == 200:
            return True
        raise self._unexpected("HEAD", status, b"")

    def fetch(self, key: str, limit: int) -> Download | None:
        """``GET``: the artifact for ``key``, ``None`` when the server has none."""
        status, headers, data = self._exchange("GET", key, None, self._headers(), limit)
        if status == 404:
            return None
        if status != 200:
            raise self._unexpected("GET", status, data)
        return Download(body=data, tag=headers.get("x-artifact-tag"))

    def upload(self, key: str, body: bytes, duration_ms: int, tag: str | None) -> None:
        """``PUT``: store ``body`` under ``key`` with the task's duration and signature."""
        headers = self._headers()
        headers["Content-Type"] = "application/octet-stream"
        headers["x-artifact-duration"] = str(max(0, duration_ms))
        if tag is not None:
            headers["x-artifact-tag"] = tag
        status, _, data = self._exchange("PUT", key, body, headers, 1024 * 1024)
        if status not in (200, 201, 202):
            raise self._unexpected("PUT", status, data)
