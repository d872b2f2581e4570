"""The body of a :func:`~..factories.redis` fixture: an index on this worker's server with
other settings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ..factories import merged
from ..kinds import kind
from ..plugin import _or_fail, hub_of, use
from .isolation import RedisSlot
from .model import RedisDatabase

if TYPE_CHECKING:
    from ..factories import Pairs


def variant(request: pytest.FixtureRequest, pairs: Pairs) -> Iterator[RedisDatabase]:
    """An index of the test's own on the factory's server (started once per worker)."""
    variants: dict[Any, Any] = request.getfixturevalue("_cleanroom_variants")
    hub = hub_of(request.config)
    redis = kind("redis")
    slot = variants.get(("redis", pairs))
    if not isinstance(slot, RedisSlot):
        both = merged(hub.settings.redis_settings, pairs)
        settings = hub.settings.with_changes(redis_settings=both)
        if both != hub.settings.redis_settings:  # another server: a fixed port is the plain one's
            settings = settings.with_changes(redis_port=0)
        server = _or_fail(lambda: hub.server("redis", settings))
        made = _or_fail(lambda: redis.isolation(server, hub))
        assert isinstance(made, RedisSlot)
        slot = variants["redis", pairs] = made
    yield from use(request, redis, slot, slot.server)
