"""Fixture factories: more ``postgres``/``redis`` fixtures on servers with other settings.

In a conftest.py::

    from pytest_cleanroom.services import factories

    postgres_stats = factories.postgres(
        settings={"shared_preload_libraries": "pg_stat_statements"},
        extensions=["pg_stat_statements"],
    )
    redis_lru = factories.redis(settings={"maxmemory": "2mb", "maxmemory-policy": "allkeys-lru"})

Each fixture is named after the variable. The settings are part of the server's identity: a
factory's server is another server than the plain fixture's (unless the settings are equal), and
it is shared like the plain one (PostgreSQL: one per run for every xdist worker; Redis: one per
worker). The ini settings (``cleanroom_postgres_settings``, ``cleanroom_redis_settings``) apply
below a factory's, which win where both set a name.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from .errors import ServiceConfigError
from .settings import server_settings


def _pairs(kind: str, settings: Mapping[str, object] | None) -> tuple[tuple[str, str], ...]:
    lines = [f"{name} = {value}" for name, value in (settings or {}).items()]
    return server_settings(lines, f"factories.{kind}(settings=...)", kind=kind)


def postgres(
    *, settings: Mapping[str, object] | None = None, extensions: Sequence[str] = ()
) -> Any:
    """A function-scoped fixture like ``postgres``, on the server with ``settings`` (e.g.
    ``{"shared_buffers": "64MB", "wal_level": "logical"}``), in databases cloned from a template
    in which ``extensions`` were created (by the server's superuser: untrusted ones work too).
    Bad settings are a :class:`ServiceConfigError` when the conftest is imported."""
    pairs = _pairs("postgres", settings)
    exts = tuple(extensions)
    for extension in exts:
        if not extension or not isinstance(extension, str):
            raise ServiceConfigError(f"factories.postgres: bad extension name {extension!r}")

    @pytest.fixture
    def fixture(request: pytest.FixtureRequest) -> Iterator[Any]:
        from .plugin import postgres_variant

        yield from postgres_variant(request, pairs, exts)

    fixture.__doc__ = f"A PostgreSQL database on the server with {dict(pairs)} ({list(exts)})."
    return fixture


def redis(*, settings: Mapping[str, object] | None = None) -> Any:
    """A function-scoped fixture like ``redis``, on this worker's Redis server with ``settings``
    (e.g. ``{"maxmemory-policy": "allkeys-lru"}``); after each test the server is put back to
    these settings, not the default ones."""
    pairs = _pairs("redis", settings)

    @pytest.fixture
    def fixture(request: pytest.FixtureRequest) -> Iterator[Any]:
        from .plugin import redis_variant

        yield from redis_variant(request, pairs)

    fixture.__doc__ = f"A Redis database on this worker's server with {dict(pairs)}."
    return fixture


__all__ = ["postgres", "redis"]
