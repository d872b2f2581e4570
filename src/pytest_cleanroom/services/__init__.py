"""Real PostgreSQL and Redis for tests: one server per run, one database per test.

Fixtures (registered by the ``cleanroom`` pytest plugin): ``postgres``, ``redis`` (function scope)
and ``postgres_server``, ``redis_server`` (session scope). See docs/services.md.
"""

from __future__ import annotations

from .errors import (
    ServiceConfigError,
    ServiceError,
    ServiceStartError,
    ServiceUnavailableError,
    TemplateError,
)
from .model import PostgresDatabase, PostgresServer, RedisDatabase, RedisServer

__all__ = [
    "PostgresDatabase",
    "PostgresServer",
    "RedisDatabase",
    "RedisServer",
    "ServiceConfigError",
    "ServiceError",
    "ServiceStartError",
    "ServiceUnavailableError",
    "TemplateError",
]
