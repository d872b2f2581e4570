"""The body of a :func:`~..factories.postgres` fixture: a database on the server with other
settings, binaries or template extensions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ..factories import merged
from ..kinds import kind
from ..plugin import _or_fail, hub_of, use
from .isolation import DatabaseFactory
from .model import PostgresDatabase
from .template import run_template

if TYPE_CHECKING:
    from ..factories import Pairs, Server


def variant(
    request: pytest.FixtureRequest,
    pairs: Pairs,
    extensions: tuple[str, ...],
    binaries: Server,
) -> Iterator[PostgresDatabase]:
    """A database of the test's own on the factory's server (started once per run)."""
    from .kind import PostgresKind

    variants: dict[Any, Any] = request.getfixturevalue("_cleanroom_variants")
    key = ("postgres", pairs, extensions, binaries)
    hub = hub_of(request.config)
    factory = variants.get(key)
    if not isinstance(factory, DatabaseFactory):
        settings = hub.settings.with_changes(
            postgres_settings=merged(hub.settings.postgres_settings, pairs)
        )
        if binaries.bin_dir is not None or binaries.version is not None:
            # A factory's choice replaces the ini's: its bin_dir may hold another version.
            settings = settings.with_changes(
                postgres_bin_dir=binaries.bin_dir, postgres_version=binaries.version
            )
        if settings.postgres_identity != hub.settings.postgres_identity:
            settings = settings.with_changes(postgres_port=0)  # a fixed port is the plain one's
        server = _or_fail(lambda: hub.server("postgres", settings))
        template = _or_fail(lambda: run_template(hub, settings, extensions))
        prefix = f"{hub.run.worker_prefix}v{len(variants)}_"
        factory = variants[key] = PostgresKind.factory(server, hub, template, prefix)
    yield from use(request, kind("postgres"), factory, factory.server)
