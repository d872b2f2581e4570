"""Redis in a container (``cleanroom_redis_image``): its users in a mounted config file.

The passwords live in a file, not on the container's command line; the server listens on 6379
inside, published on a free (or ``cleanroom_redis_port``) port of 127.0.0.1, and on a unix socket
in the bind-mounted socket directory. No persistence. The shared start is
:class:`~.container_provider.ContainerService`'s.
"""

from __future__ import annotations

import secrets
from typing import Any

from ..container_provider import ContainerService
from .acl import ADMIN_USER, acl_config
from .model import RedisServer

REDIS_DATABASES = 64
CONTAINER_CONF = "/etc/cleanroom/redis.conf"


class RedisContainer(ContainerService[RedisServer]):
    """One xdist worker's Redis server in a container."""

    service = "redis"
    image_key = "cleanroom_redis_image"
    port_key = "cleanroom_redis_port"

    def image(self) -> str:
        return self.settings.redis_image

    def fixed_port(self) -> int:
        return self.settings.redis_port

    def prepare(self) -> None:
        self.password, self.sandbox_password = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
        lines = [*acl_config(self.password, self.sandbox_password)]
        lines += [f"{name} {value}" for name, value in self.settings.redis_settings]
        conf = self.server_dir / "redis.conf"
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o644)  # the directory above keeps other users out

    def container(self, port: int) -> Any:
        from testcontainers.core.container import DockerContainer

        container = (
            self.new_container(DockerContainer, self.settings.redis_image)
            .with_volume_mapping(str(self.socket_dir), "/run/cleanroom", "rw")
            .with_volume_mapping(str(self.server_dir / "redis.conf"), CONTAINER_CONF, "ro")
            .with_command(
                f"redis-server {CONTAINER_CONF} --bind 0.0.0.0 --port 6379 "
                "--save '' --appendonly no "
                f"--databases {REDIS_DATABASES} "
                "--unixsocket /run/cleanroom/redis.sock --unixsocketperm 777"
            )
        )
        container.ports["6379/tcp"] = ("127.0.0.1", port)  # loopback only
        return container

    def starting_errors(self) -> tuple[type[Exception], ...]:
        import redis as redis_py

        return (redis_py.RedisError,)

    def probe(self, port: int) -> RedisServer:
        import redis as redis_py

        client = redis_py.Redis(
            host="127.0.0.1",
            port=port,
            username=ADMIN_USER,
            password=self.password,
            socket_timeout=2,
            socket_connect_timeout=2,
        )
        try:
            version = str(client.info("server").get("redis_version", "?"))
        finally:
            client.close()
        return RedisServer(
            provider=self.engine.name,
            host="127.0.0.1",
            port=port,
            password=self.password,
            unix_socket=self.socket_file("redis.sock"),
            version=version,
            databases=REDIS_DATABASES,
            username=ADMIN_USER,
            log=self.log(),
            sandbox_password=self.sandbox_password,
            dedicated=True,
        )
