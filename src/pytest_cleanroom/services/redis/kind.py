"""The ``redis`` kind: a Redis server per xdist worker, a database index per test."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import binaries
from ..protocol import Exposure, RunContext, ServiceKind, keyed
from ..registry import Started
from ..settings import ENV_REDIS_URL, ServiceSettings
from .isolation import RedisSlot
from .model import RedisDatabase, RedisServer

if TYPE_CHECKING:
    from ..hub import ServiceHub
    from ..model import LogSource


class RedisKind(ServiceKind[RedisServer, RedisDatabase]):
    """Redis: ``redis-server`` from the machine, a container, or a URL."""

    name = "redis"
    starters = {
        "process": ".redis.process:start_redis",
        "external": ".redis.external:connect_external",
    }
    container = ".redis.container:RedisContainer"
    install_hint = binaries.REDIS_INSTALL_HINT
    url_env = ENV_REDIS_URL
    per_worker = True  # server-wide state (pub/sub, CONFIG, functions) stays in one worker
    client_module = "redis"
    fixture_doc = "A Redis database index no other running test uses, emptied after the test."
    server_doc = "This xdist worker's Redis server (an external one is shared by every worker)."

    def binary_detail(self, settings: ServiceSettings) -> str | None:
        rd = binaries.find_redis(settings.redis_server)
        return f"redis-server {rd.version} at {rd.path}" if rd else None

    def url(self, settings: ServiceSettings) -> tuple[str | None, str]:
        return settings.redis_url, settings.redis_url_source

    def state_key(self, settings: ServiceSettings, run: RunContext, provider: str | None) -> str:
        """Server settings are part of the server's identity (see :mod:`..factories`)."""
        key = keyed("redis", settings.redis_settings)
        return key if provider == "external" else f"{key}-{run.worker_id}"

    def start(
        self, provider: str, settings: ServiceSettings, run: RunContext
    ) -> Started[RedisServer]:
        if provider != "external" and settings.redis_port:  # worker gwN listens on port + N
            settings = settings.with_changes(redis_port=settings.redis_port + run.worker_index)
        return super().start(provider, settings, run)

    def server_from_json(self, data: dict[str, Any]) -> RedisServer:
        return RedisServer.from_json(data)

    def isolation(self, server: RedisServer, hub: ServiceHub) -> RedisSlot:
        index = 0 if server.dedicated else hub.run.worker_index
        return RedisSlot(server, index, hub.run.worker_id, dedicated=server.dedicated)

    def expose(self, handle: RedisDatabase) -> Exposure:
        socket = handle.unix_socket
        return Exposure(Path(socket).parent if socket else None, handle.sandbox_env())

    def health(self, server: RedisServer) -> str | None:
        import redis as redis_py

        client = server.client(socket_timeout=2, socket_connect_timeout=2)
        try:
            client.ping()
        except redis_py.RedisError as exc:
            return f"redis-server does not answer: {exc}"
        finally:
            client.close()
        return None

    def log(self, handle: RedisDatabase) -> LogSource:
        return handle.server.log
