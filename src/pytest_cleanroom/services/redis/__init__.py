"""Redis as a service kind: a server per xdist worker, a database index per test.

Providers: :mod:`.process` (``redis-server`` from the machine), :mod:`.container` (docker,
podman), :mod:`.external` (a URL). :mod:`.isolation` empties the index and resets the worker's
server after each test; :mod:`.acl` narrows what sandboxed commands may do.
"""

from __future__ import annotations

from .model import RedisDatabase, RedisServer

__all__ = ["RedisDatabase", "RedisServer"]
