"""Bounded HTTP transfers: a total-time deadline, and caps on the declared, received and
decompressed size of a body, so that a slow, huge or compressed-bomb answer ends in an error.

The limits come from the environment (see docs/market.md):

=========================  =========================================  ==========
variable                   what                                       default
=========================  =========================================  ==========
``GGEN_HTTP_DEADLINE``     seconds one transfer may take in total     120
``GGEN_MAX_INDEX_BYTES``   bytes of an index, after decompression     64 MiB
``GGEN_MAX_ARCHIVE_BYTES`` bytes of an archive, after decompression   256 MiB
=========================  =========================================  ==========
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from .env_limits import env_number
from .errors import RegistryError

if TYPE_CHECKING:
    import httpx

T = TypeVar("T")

DEFAULT_DEADLINE = 120.0
MAX_INDEX_BYTES = 64 * 1024 * 1024
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
_CHUNK = 1 << 16
#: What we accept; a server that compresses with anything else is refused, not decoded.
ACCEPT_ENCODING = "gzip, deflate, identity"


@dataclass(frozen=True)
class TransferLimits:
    """How long one transfer may take in total and how many bytes its body may have."""

    deadline: float
    max_bytes: int

    @classmethod
    def for_index(cls) -> TransferLimits:
        return cls(_deadline(), _index_bytes())

    @classmethod
    def for_archive(cls) -> TransferLimits:
        return cls(_deadline(), archive_bytes())


def archive_bytes() -> int:
    """The largest archive accepted (``GGEN_MAX_ARCHIVE_BYTES``)."""
    return int(env_number("GGEN_MAX_ARCHIVE_BYTES", MAX_ARCHIVE_BYTES, RegistryError))


def _deadline() -> float:
    return env_number("GGEN_HTTP_DEADLINE", DEFAULT_DEADLINE, RegistryError)


def _index_bytes() -> int:
    return int(env_number("GGEN_MAX_INDEX_BYTES", MAX_INDEX_BYTES, RegistryError))


def within_deadline(work: Callable[[threading.Event], T], limits: TransferLimits, what: str) -> T:
    """Run ``work(cancelled)`` in a thread and wait at most ``limits.deadline`` seconds for it.

    Past the deadline ``cancelled`` is set (``work`` checks it between chunks and stops) and a
    :class:`RegistryError` is raised; the thread, blocked in a read at worst, ends with its own
    per-read timeout without writing anything more.
    """
    cancelled = threading.Event()
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["value"] = work(cancelled)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=target, name="ggen-transfer", daemon=True)
    worker.start()
    worker.join(limits.deadline)
    if worker.is_alive():
        cancelled.set()
        raise RegistryError(
            f"{what}: not complete within {limits.deadline:g} s (a slow or stalled server); "
            "raise GGEN_HTTP_DEADLINE if the server is just slow"
        )
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def body_chunks(
    response: httpx.Response, limits: TransferLimits, what: str, cancelled: threading.Event
) -> Iterator[bytes]:
    """The body of ``response`` (opened with ``stream``), decompressed here with a cap on the
    output, chunk by chunk; :class:`RegistryError` as soon as a limit is passed."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and len(declared) < 20 and int(declared) > limits.max_bytes:
        raise _too_large(what, limits, f"declares {declared} bytes")
    decoder = _decoder(response.headers.get("content-encoding", ""), what)
    total = 0
    for raw in response.iter_raw(_CHUNK):
        for chunk in decoder(raw):
            if cancelled.is_set():
                raise RegistryError(f"{what}: cancelled (past its deadline)")
            total += len(chunk)
            if total > limits.max_bytes:
                raise _too_large(what, limits, "sent more")
            yield chunk


def read_body(
    response: httpx.Response, limits: TransferLimits, what: str, cancelled: threading.Event
) -> bytes:
    """The whole (bounded) body of ``response``."""
    return b"".join(body_chunks(response, limits, what, cancelled))


def _too_large(what: str, limits: TransferLimits, detail: str) -> RegistryError:
    return RegistryError(
        f"{what}: larger than the limit of {limits.max_bytes} bytes ({detail}); refused"
        " (GGEN_MAX_INDEX_BYTES / GGEN_MAX_ARCHIVE_BYTES raise it)"
    )


def _decoder(encoding: str, what: str) -> Callable[[bytes], Iterator[bytes]]:
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return lambda raw: iter((raw,))
    if len(codings) > 1 or codings[0] not in ("gzip", "x-gzip", "deflate"):
        raise RegistryError(f"{what}: unsupported Content-Encoding {encoding!r}")
    return _Inflater(zlib.MAX_WBITS | 32).feed  # 32: zlib or gzip header, found automatically


class _Inflater:
    """zlib/gzip decompression whose output comes in chunks of at most ``_CHUNK`` bytes, so a
    small compressed input never expands in memory all at once."""

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._inflate = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> Iterator[bytes]:
        try:
            while data:
                out = self._inflate.decompress(data, _CHUNK)
                if out:
                    yield out
                data = self._inflate.unconsumed_tail
                if self._inflate.eof:  # a multi-member gzip stream: start the next member
                    data = self._inflate.unused_data + data
                    self._inflate = zlib.decompressobj(self._wbits)
        except zlib.error as exc:
            raise RegistryError(f"compressed body does not decompress: {exc}") from None
