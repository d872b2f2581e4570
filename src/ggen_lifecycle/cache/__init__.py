"""The task cache: a small contract (:class:`TaskCache`), the local cache, and the one to use.

``open_cache`` gives what ``[cache]`` and turbo's variables ask for: the local cache in
``.ggen/cache``, or the remote cache (``[cache.remote]``, ``TURBO_API``) in front of it. The
remote cache's modules are imported only when one is configured.
"""

from __future__ import annotations

from .key import compute_key, task_key
from .local import LocalCache, declares
from .protocol import CorruptEntryError, Entry, TaskCache

TYPE_CHECKING = False  # typing itself is not imported: the cache-hit fast path loads this module
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from ..model import CacheSpec

__all__ = [
    "Cache",
    "CorruptEntryError",
    "Entry",
    "LocalCache",
    "TaskCache",
    "compute_key",
    "declares",
    "open_cache",
    "task_key",
]

Cache = LocalCache  # its name before the cache had a contract


def open_cache(
    directory: Path, spec: CacheSpec, env: Mapping[str, str], warn: Callable[[str], None]
) -> TaskCache:
    """The cache ``spec`` (``[cache]``) and ``env`` (turbo's variables) configure, with its
    local entries in ``directory``; ``warn`` hears what is wrong with the remote settings."""
    local = LocalCache(directory, spec.max_bytes, warn=warn)
    if not spec.remote.url and not env.get("TURBO_API"):
        return local  # nothing to import on the way to a local hit
    from ..remote_cache import open_remote

    return open_remote(spec.remote, env, warn, local) or local
