"""``ggen market serve``: a registry over HTTP that reads like any other and takes uploads.

``GET index.json`` (with an ``ETag``; an empty index while nothing is published) and
``GET archives/<id>-<version>.tar.gz`` serve what ``ggen market add`` reads. ``GET
api/v1/registry`` and ``POST api/v1/publish`` (see :mod:`.protocol`) need a token. Each read is
bounded in time, a request's line and headers by the read timeout in all (a slowloris client
gets 408) and its body by the upload deadline. An upload is read whole (``Content-Length``
required, at most the size cap), checked (:mod:`.intake`) and only then written, so a dropped or
cut connection leaves the registry as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.server
import json
import os
import re
import socket
import ssl
import stat
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..builder import ARCHIVE_DIR
from ..index import INDEX_NAME
from .protocol import INFO_PATH, PROTOCOL, PUBLISH_PATH, IntakeError

if TYPE_CHECKING:
    from pytest_cleanroom.attest.keys import VerifyingKey

EMPTY_INDEX = b'{\n  "format": 1,\n  "updated": "",\n  "packs": {}\n}\n'
_ARCHIVE_FILE = re.compile(r"^[a-z0-9][a-z0-9_.+-]*\.tar\.gz$")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class ServeSettings:
    """What one registry server serves and whom it lets publish."""

    root: Path
    tokens: tuple[str, ...]
    keys: tuple[VerifyingKey, ...]
    max_upload_bytes: int
    read_timeout: float = 30.0
    upload_timeout: float = 300.0
    log: Callable[[dict[str, Any]], None] = lambda _event: None


class RegistryServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server holding its :class:`ServeSettings`."""

    daemon_threads = True
    request_queue_size = 128  # a burst of connections waits to be accepted, none is refused

    def __init__(self, address: tuple[str, int], settings: ServeSettings) -> None:
        self.settings = settings
        super().__init__(address, _Handler)

    def use_tls(self, certfile: Path, keyfile: Path) -> None:
        """Serve HTTPS with this certificate (the handshake runs in the request's thread)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile, keyfile)
        self.socket = context.wrap_socket(
            self.socket, server_side=True, do_handshake_on_connect=False
        )

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed outside a request (a TLS handshake, a reset): one line."""
        problem = sys.exc_info()[1]
        self.settings.log({"status": 0, "detail": f"connection failed: {problem!r}"[:300]})


class _DroppedError(Exception):
    """The client went away in the middle of its request body."""


class _Handler(http.server.BaseHTTPRequestHandler):
    server: RegistryServer
    raw_requestline: bytes
    server_version = "ggen-market-registry/1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one structured line per request instead, see _answer

    @property
    def settings(self) -> ServeSettings:
        return self.server.settings

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.settings.read_timeout)

    def handle_one_request(self) -> None:
        """One request: its line and headers must arrive within the read timeout, its body
        within the upload timeout, however steadily they trickle (see :meth:`parse_request`)."""
        self._expired = threading.Event()
        self._arm(self._head_timeout)
        try:
            super().handle_one_request()
        finally:
            self._watchdog.cancel()

    @property
    def _head_timeout(self) -> float:
        return min(self.settings.read_timeout, self.settings.upload_timeout)

    def _arm(self, seconds: float) -> None:
        self._watchdog = threading.Timer(seconds, self._cut)
        self._watchdog.daemon = True
        self._watchdog.start()

    def parse_request(self) -> bool:
        """The request line and headers, answered 408 when the deadline cut them short (a
        slowloris client), instead of taking what arrived for a whole request."""
        if self._expired.is_set() and not self.raw_requestline.endswith(b"\n"):
            # the line is cut: answer in the server's protocol, not HTTP/0.9 (no status line)
            self.command = self.path = self.requestline = ""
            self.request_version = self.protocol_version
            self._too_slow()
            return False
        parsed = super().parse_request()
        self._watchdog.cancel()
        if parsed and self._expired.is_set():
            self._too_slow()
            return False
        self._arm(self.settings.upload_timeout)  # for the body
        return parsed

    def _too_slow(self) -> None:
        limit = self._head_timeout
        self._error(408, f"the request line and headers took longer than {limit:g} s")

    def _cut(self) -> None:
        """The deadline passed: end the reading side (a blocked read returns), keep writing."""
        self._expired.set()
        with contextlib.suppress(OSError):  # already closed
            # the plain socket's shutdown: an SSLSocket's own would drop TLS for the answer
            socket.socket.shutdown(self.connection, socket.SHUT_RD)

    # -- reading ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/" + INDEX_NAME:
            self._index()
        elif path.startswith(f"/{ARCHIVE_DIR}/"):
            self._archive(path[len(ARCHIVE_DIR) + 2 :])
        elif path == "/" + INFO_PATH:
            if self._authorised():
                self._json(200, self._info())
        else:
            self._error(404, f"nothing at {path[:200]}")

    def _info(self) -> dict[str, Any]:
        return {
            "ok": True,
            "protocol": PROTOCOL,
            "max_upload_bytes": self.settings.max_upload_bytes,
            "trusted_keys": [k.keyid for k in self.settings.keys],
        }

    def _index(self) -> None:
        try:
            body = (self.settings.root / INDEX_NAME).read_bytes()
        except FileNotFoundError:
            body = EMPTY_INDEX
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if self.headers.get("If-None-Match") == etag:
            self._answer(304, b"", {"ETag": etag})
            return
        self._answer(200, body, {"ETag": etag, "Content-Type": "application/json"})

    def _archive(self, name: str) -> None:
        """Only a plain file name of ``archives/``, opened without following any link."""
        if not _ARCHIVE_FILE.match(name) or ".." in name:
            self._error(404, "no such archive")
            return
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            folder = os.open(self.settings.root / ARCHIVE_DIR, flags | os.O_DIRECTORY)
            try:
                fd = os.open(name, flags, dir_fd=folder)
            finally:
                os.close(folder)
        except OSError:
            self._error(404, "no such archive")
            return
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                self._error(404, "no such archive")
                return
            body = handle.read()
        self._answer(200, body, {"Content-Type": "application/gzip"})

    # -- publishing ---------------------------------------------------------------------------

    def do_POST(self) -> None:
        if self.path.split("?", 1)[0] != "/" + PUBLISH_PATH:
            self._error(404, f"nothing to POST at {self.path[:200]}")
            return
        if not self._authorised():
            return
        try:
            result = self._publish()
        except IntakeError as exc:
            self._error(exc.status, str(exc))
            return
        except _DroppedError as exc:
            self._event(0, str(exc))
            self.close_connection = True
            return
        self._json(200 if result["already_published"] else 201, result)

    def _publish(self) -> dict[str, Any]:
        from ._multipart import boundary_of, parse_form
        from .intake import accept, read_form

        boundary = boundary_of(self.headers.get("Content-Type", ""))
        body = self._body()
        upload = read_form(parse_form(body, boundary))
        return accept(self.settings.root, upload, self.settings.keys).to_json()

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise IntakeError(411, "send the body with a Content-Length (no chunked encoding)")
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or len(length) > 15:
            raise IntakeError(411, "a Content-Length is required")
        size, cap = int(length), self.settings.max_upload_bytes
        if size > cap:
            raise IntakeError(413, f"the body has {size} bytes; this registry takes at most {cap}")
        chunks, received = [], 0
        while received < size:
            cut = f"upload cut off after {received} of {size} bytes; nothing written"
            try:
                chunk = self.rfile.read1(min(_CHUNK, size - received))
            except OSError as exc:  # a timeout too
                chunk, cut = b"", f"{cut} ({exc})"
            if not chunk:
                self._give_up(cut)
            chunks.append(chunk)
            received += len(chunk)
        self._watchdog.cancel()
        return b"".join(chunks)

    def _give_up(self, cut: str) -> None:
        if self._expired.is_set():
            limit = self.settings.upload_timeout
            raise IntakeError(408, f"the upload took longer than {limit:g} s: {cut}")
        raise _DroppedError(cut)

    def _authorised(self) -> bool:
        tokens = self.settings.tokens
        if not tokens:
            self._error(403, "this registry takes no uploads (it was started without a token)")
            return False
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            self._error(401, "an Authorization: Bearer <token> header is required",
                        {"WWW-Authenticate": 'Bearer realm="ggen-market"'})  # fmt: skip
            return False
        offered = given.strip().encode()
        if not any(hmac.compare_digest(offered, t.encode()) for t in tokens):
            self._error(403, "the token is not accepted")
            return False
        return True

    # -- answering ----------------------------------------------------------------------------

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.close_connection = True
        self._json(status, {"ok": False, "error": message}, headers)

    def _json(
        self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        body = (json.dumps(data, indent=2) + "\n").encode()
        self._answer(status, body, {"Content-Type": "application/json", **(headers or {})},
                     detail=str(data.get("error", "")))  # fmt: skip

    def _answer(self, status: int, body: bytes, headers: dict[str, str], detail: str = "") -> None:
        self._event(status, detail)
        try:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if status != 304 and self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client went away

    def _event(self, status: int, detail: str) -> None:
        """One line per request: method, path, status (0: no answer), why; never a header."""
        event = {"method": self.command, "path": self.path[:200], "status": status}
        self.settings.log(event | ({"detail": detail} if detail else {}))


def serve_registry(
    root: Path,
    *,
    host: str,
    port: int,
    tokens: Sequence[str],
    keys: Sequence[VerifyingKey],
    max_upload_bytes: int,
    log: Callable[[dict[str, Any]], None],
    read_timeout: float = 30.0,
    upload_timeout: float = 300.0,
    tls: tuple[Path, Path] | None = None,
) -> RegistryServer:
    """A bound :class:`RegistryServer` for ``root`` (call ``serve_forever``)."""
    settings = ServeSettings(
        root.resolve(), tuple(tokens), tuple(keys), max_upload_bytes, read_timeout,
        upload_timeout, log,
    )  # fmt: skip
    server = RegistryServer((host, port), settings)
    if tls is not None:
        server.use_tls(*tls)
    return server
