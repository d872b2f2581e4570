"""A shared task cache on a Turborepo Remote Cache API server, in front of the local cache.

:class:`RemoteCache` is a :class:`~ggen_lifecycle.cache.TaskCache` that holds a local cache.
Lookups go to the local cache first; on a local miss the remote artifact is downloaded, its
signature checked, unpacked into a staging directory, verified against its manifest and stored
as a local entry, which is then restored exactly like a local hit (with the local cache's restore
checks). A task built here is stored locally, then uploaded. A dry run asks only the local cache.

Keys cannot collide with turbo's on a shared server: turbo's are 16 hex digits (xxHash64), ggen's
are 64 (sha256 over a ``ggen-lifecycle-cache-v1`` prefix and the task's inputs).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cache.protocol import Entry, TaskCache
from .settings import RemoteSettings, resolve

if TYPE_CHECKING:
    from ..cache.local import LocalCache
    from ..model import RemoteCacheSpec

__all__ = ["RemoteCache", "RemoteSettings", "open_remote"]

MAX_ARTIFACT_BYTES = 512 * 1024 * 1024


class RemoteCache(TaskCache):
    """The remote cache of one run, in front of ``local``: fetches into it and pushes from it.

    The first time the server is unreachable, slow or answers nonsense, one warning says so and
    the remote cache is left alone for the rest of the run; an artifact that fails its checks
    is refused with one warning naming the task's key, and the task runs.
    """

    def __init__(
        self, settings: RemoteSettings, warn: Callable[[str], None], local: LocalCache
    ) -> None:
        from .client import TurboApiClient

        self.local = local
        self.settings = settings
        self.client = TurboApiClient(settings)
        self.warn = warn
        self._lock = threading.Lock()
        self._down = False
        self._refused: set[str] = set()

    @property
    def available(self) -> bool:
        return not self._down

    def _outage(self, reason: str) -> None:
        with self._lock:
            first = not self._down
            self._down = True
        if first:
            self.warn(
                f"remote cache {self.settings.url} not used for the rest of this run: {reason}"
            )

    def _refuse(self, key: str, reason: str) -> None:
        with self._lock:
            self._refused.add(key)
        self.warn(f"remote cache artifact {key[:12]} refused ({reason}); running the task")

    # -- the TaskCache contract ------------------------------------------------------------------

    def lookup(self, key: str) -> Entry | None:
        """The local entry for ``key``, else the server's (downloaded into the local cache)."""
        return self.local.lookup(key) or self.fetch(key)

    def would_hit(self, key: str) -> bool:
        return self.local.would_hit(key)  # a dry run does not ask the server

    def restore(self, entry: Entry, cwd: Path, *, root: Path, declared: Sequence[str]) -> list[str]:
        return self.local.restore(entry, cwd, root=root, declared=declared)

    def store(
        self,
        key: str,
        cwd: Path,
        outputs: Sequence[str],
        log: Path,
        info: Mapping[str, Any],
        *,
        duration: float = 0.0,
    ) -> None:
        """Store locally, then upload (see :meth:`push`)."""
        self.local.store(key, cwd, outputs, log, info, duration=duration)
        self.push(key, duration)

    def discard(self, key: str) -> None:
        self.local.discard(key)

    # -- the server ------------------------------------------------------------------------------

    def fetch(self, key: str) -> Entry | None:
        """Download ``key`` into the local cache and return the verified local entry (its origin
        ``"remote hit"``), or ``None``."""
        from .client import RemoteUnavailableError

        if self._down:
            return None
        local = self.local
        limit = min(local.max_bytes, MAX_ARTIFACT_BYTES)
        try:
            download = self.client.fetch(key, limit)
        except RemoteUnavailableError as exc:
            self._outage(str(exc))
            return None
        if download is None:
            return None
        problem = self._signature_problem(key, download.body, download.tag)
        if problem is not None:
            self._refuse(key, problem)
            return None
        entry = self._import(key, download.body, local, limit)
        return None if entry is None else entry.replace(origin="remote hit")

    def _signature_problem(self, key: str, body: bytes, tag: str | None) -> str | None:
        from .signature import tag_matches

        secret = self.settings.signature_key
        if secret is None:
            return None
        if not tag:
            return "unsigned: the server sent no x-artifact-tag"
        if not tag_matches(secret, key, self.settings.signed_team, body, tag):
            return "its signature does not verify with TURBO_REMOTE_CACHE_SIGNATURE_KEY"
        return None

    def _import(self, key: str, body: bytes, local: LocalCache, limit: int) -> Entry | None:
        from .artifact import ArtifactError, unpack

        directory = Path(local.directory)
        directory.mkdir(parents=True, exist_ok=True)
        staging = directory / f".remote-{key[:16]}-{threading.get_ident()}-{time.time_ns()}"
        try:
            unpacked = unpack(body, key, staging, limit)
            local.store(key, unpacked.tree, unpacked.outputs, unpacked.log, unpacked.info)
        except ArtifactError as exc:
            self._refuse(key, str(exc))
            return None
        except OSError as exc:
            self.warn(f"remote cache artifact {key[:12]} could not be stored locally: {exc}")
            return None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return local.lookup(key)

    def push(self, key: str, duration: float) -> None:
        """Upload the local entry ``key`` unless the server has it already (read-write only)."""
        from .artifact import pack
        from .client import RemoteUnavailableError
        from .signature import make_tag

        if self._down or not self.settings.writable:
            return
        entry = self.local.lookup(key)
        if entry is None:
            return
        try:
            if key not in self._refused and self.client.exists(key):
                return
            body = pack(entry)
            secret = self.settings.signature_key
            tag = make_tag(secret, key, self.settings.signed_team, body) if secret else None
            self.client.upload(key, body, int(duration * 1000), tag)
        except RemoteUnavailableError as exc:
            self._outage(str(exc))
        except OSError as exc:
            self.warn(f"remote cache: could not pack {key[:12]} for upload: {exc}")


def open_remote(
    spec: RemoteCacheSpec, env: Mapping[str, str], warn: Callable[[str], None], local: LocalCache
) -> RemoteCache | None:
    """The remote cache configured by ``[cache.remote]`` and turbo's variables, in front of
    ``local``, if any."""
    settings, problem = resolve(spec, env)
    if problem is not None:
        warn(problem)
    if settings is None:
        return None
    try:
        import zstandard  # noqa: F401 - artifacts are zstd-compressed, as turbo's
    except ImportError:
        from pytest_cleanroom.config_errors.extras import install_hint

        warn(f"remote cache not used: it needs the zstandard package ({install_hint('zstandard')})")
        return None
    return RemoteCache(settings, warn, local)
