"""Fixture factories: more ``postgres``/``redis`` fixtures on servers with other settings.

In a conftest.py::

    from pytest_cleanroom.services import factories

    postgres_stats = factories.postgres(
        settings={"shared_preload_libraries": "pg_stat_statements"},
        extensions=["pg_stat_statements"],
    )
    redis_lru = factories.redis(settings={"maxmemory": "2mb", "maxmemory-policy": "allkeys-lru"})
    postgres16 = factories.postgres(version=16)

Each fixture is named after the variable. The settings, and PostgreSQL's major version or binaries
directory, are part of the server's identity: a
factory's server is another server than the plain fixture's (unless the settings are equal), and
it is shared like the plain one (PostgreSQL: one per run for every xdist worker; Redis: one per
worker). The ini settings (``cleanroom_postgres_settings``, ``cleanroom_redis_settings``) apply
below a factory's, which win where both set a name.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .errors import ServiceConfigError
from .settings import postgres_major, server_settings

#: A factory's server settings, ``(name, value)`` sorted by name.
Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Server:
    """Which PostgreSQL binaries a factory's server runs (``None``: the ini's choice)."""

    version: int | None = None
    bin_dir: Path | None = None


def merged(base: Pairs, mine: Pairs) -> Pairs:
    """The ini's settings ``base`` with a factory's on top."""
    return tuple(sorted({**dict(base), **dict(mine)}.items()))


def _pairs(kind: str, settings: Mapping[str, object] | None) -> Pairs:
    lines = [f"{name} = {value}" for name, value in (settings or {}).items()]
    return server_settings(lines, f"factories.{kind}(settings=...)", kind=kind)


def postgres(
    *,
    settings: Mapping[str, object] | None = None,
    extensions: Sequence[str] = (),
    version: int | None = None,
    bin_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """A function-scoped fixture like ``postgres``, on the server with ``settings`` (e.g.
    ``{"shared_buffers": "64MB", "wal_level": "logical"}``), in databases cloned from a template
    in which ``extensions`` were created (by the server's superuser: untrusted ones work too).
    ``version`` (a major, e.g. ``16``) or ``bin_dir`` (holding ``initdb`` and ``postgres``)
    choose the process provider's binaries, as ini ``cleanroom_postgres_version`` and
    ``cleanroom_postgres_bin_dir`` do. Bad arguments are a :class:`ServiceConfigError` when the
    conftest is imported."""
    pairs = _pairs("postgres", settings)
    server = Server(
        version=postgres_major(version, "factories.postgres(version=...)"),
        bin_dir=Path(bin_dir).absolute() if bin_dir is not None else None,
    )
    exts = tuple(extensions)
    for extension in exts:
        if not extension or not isinstance(extension, str):
            raise ServiceConfigError(f"factories.postgres: bad extension name {extension!r}")

    @pytest.fixture
    def fixture(request: pytest.FixtureRequest) -> Iterator[Any]:
        from .postgres.factory import variant

        yield from variant(request, pairs, exts, server)

    fixture.__doc__ = (
        f"A PostgreSQL database on the server with {dict(pairs)} ({list(exts)}, {server})."
    )
    return fixture


def redis(*, settings: Mapping[str, object] | None = None) -> Any:
    """A function-scoped fixture like ``redis``, on this worker's Redis server with ``settings``
    (e.g. ``{"maxmemory-policy": "allkeys-lru"}``); after each test the server is put back to
    these settings, not the default ones."""
    pairs = _pairs("redis", settings)

    @pytest.fixture
    def fixture(request: pytest.FixtureRequest) -> Iterator[Any]:
        from .redis.factory import variant

        yield from variant(request, pairs)

    fixture.__doc__ = f"A Redis database on this worker's server with {dict(pairs)}."
    return fixture


__all__ = ["postgres", "redis"]
