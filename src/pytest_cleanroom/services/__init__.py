"""Real servers for tests: one server per run (or worker), an isolated handle per test.

Each kind is one package on a shared base (:mod:`.protocol`): :mod:`.postgres`, :mod:`.redis`,
:mod:`.mysql`, and third parties' through the ``pytest_cleanroom.services`` entry point
(:mod:`.kinds`). Fixtures (registered by the ``cleanroom`` pytest plugin): ``<kind>`` (function
scope) and ``<kind>_server`` (session scope). See docs/services.md.
"""

from __future__ import annotations

from .errors import (
    DatabaseUrlWarning,
    ServiceConfigError,
    ServiceError,
    ServiceStartError,
    ServiceUnavailableError,
    TemplateError,
)
from .mysql import MysqlDatabase, MysqlServer
from .postgres import PostgresDatabase, PostgresServer
from .protocol import Exposure, Isolation, RunContext, ServiceKind
from .redis import RedisDatabase, RedisServer

__all__ = [
    "DatabaseUrlWarning",
    "Exposure",
    "Isolation",
    "MysqlDatabase",
    "MysqlServer",
    "PostgresDatabase",
    "PostgresServer",
    "RedisDatabase",
    "RedisServer",
    "RunContext",
    "ServiceConfigError",
    "ServiceError",
    "ServiceKind",
    "ServiceStartError",
    "ServiceUnavailableError",
    "TemplateError",
]
