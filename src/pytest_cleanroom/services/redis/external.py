"""The external provider's Redis: a server the team already runs, given by URL. Nothing is
started; tests use the URL's database index plus the worker's number."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import ServiceConfigError, ServiceStartError
from ..external import redact
from ..registry import Owner, Started
from ..settings import ServiceSettings
from .model import RedisServer


def connect_external(
    settings: ServiceSettings, *, run_id: str, owner: Owner
) -> Started[RedisServer]:
    """The external provider's starter: check the configured URL (nothing to record: the run
    creates nothing there, and its indexes are flushed after each test)."""
    if settings.redis_settings:
        raise ServiceConfigError(
            "Redis server settings (ini cleanroom_redis_settings or a fixture factory) cannot "
            "be applied to an external server: set them on that server, or let the plugin "
            "start its own (process, docker or podman)"
        )
    assert settings.redis_url is not None
    server = connect_redis(settings.redis_url, settings.redis_url_source, settings.start_timeout)
    return Started(server, {"kind": "external-redis", "service": "redis"}, None, None)


def connect_redis(url: str, source: str, timeout: float) -> RedisServer:
    """Check that ``url`` reaches a Redis server; its database index is the first one we use."""
    import redis as redis_py

    parts = urlsplit(url)
    query = parse_qs(parts.query)
    db = 0
    path_db = parts.path.strip("/")
    if path_db:
        if not path_db.isdigit():
            raise ServiceConfigError(f"{source}: {path_db!r} is not a database number")
        db = int(path_db)
    elif "db" in query:
        db = int(query["db"][0])
    client = redis_py.Redis.from_url(
        url, socket_timeout=min(timeout, 30), socket_connect_timeout=min(timeout, 30)
    )
    try:
        info: dict[str, Any] = client.info("server")
        try:
            databases = int(str(client.config_get("databases").get("databases", 16)))
        except redis_py.ResponseError:  # CONFIG may be disabled on managed servers
            databases = 16
    except redis_py.AuthenticationError as exc:
        raise ServiceStartError(
            f"the external Redis from {source} ({redact(url)}) refused the credentials: {exc}; "
            "check the password in the URL (it is not shown here)"
        ) from None
    except redis_py.ResponseError as exc:
        if "NOAUTH" in str(exc) or "WRONGPASS" in str(exc):
            raise ServiceStartError(
                f"the external Redis from {source} ({redact(url)}) refused the credentials: {exc}; "
                "check the password in the URL (it is not shown here)"
            ) from None
        raise ServiceStartError(f"external Redis from {source} ({redact(url)}): {exc}") from None
    except redis_py.ConnectionError as exc:
        raise ServiceStartError(
            f"cannot connect to the external Redis from {source} ({redact(url)}): {exc}; "
            "check the server is running and the URL's host and port"
        ) from None
    finally:
        client.close()
    kwargs = client.connection_pool.connection_kwargs
    unix = kwargs.get("path")
    return RedisServer(
        provider="external",
        host=str(kwargs.get("host", "localhost")) if not unix else "localhost",
        port=int(kwargs.get("port", 6379)) if not unix else 0,
        password=kwargs.get("password"),
        unix_socket=str(unix) if unix else None,
        version=str(info.get("redis_version", "?")),
        databases=databases,
        db_base=db,
        username=kwargs.get("username"),
        tls=parts.scheme == "rediss",
    )
