"""The process provider's Redis: ``redis-server`` from the machine, nothing written to disk."""

from __future__ import annotations

import functools
import secrets
import signal
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from ..binaries import require_redis
from ..model import LogSource
from ..registry import Owner, Started
from ..settings import ServiceSettings
from ..spawn import Account, ServerDir, candidate_ports, clean_env, spawn, start_on_a_free_port
from .acl import ADMIN_USER, acl_config
from .model import RedisServer

DATABASES = 64  # a server per worker needs one; a lifecycle run hands one to each task

#: What :func:`start_redis` returns.
StartedRedis = Started[RedisServer]


def _config(
    port: int, sdir: Path, password: str, sandbox_password: str, extra: Iterable[tuple[str, str]]
) -> str:
    # A config file (mode 0600) rather than arguments keeps the password out of `ps`.
    lines = [
        f"port {port}",
        "bind 127.0.0.1",
        "protected-mode yes",
        f"unixsocket {sdir / 'sock' / 'redis.sock'}",
        "unixsocketperm 770",
        'save ""',
        "appendonly no",
        f"databases {DATABASES}",
        f"dir {sdir}",
        f"pidfile {sdir / 'redis.pid'}",
        "daemonize no",
        *acl_config(password, sandbox_password),
        *(f"{name} {value}" for name, value in extra),
    ]
    return "\n".join(lines) + "\n"


def start_redis(settings: ServiceSettings, *, run_id: str, owner: Owner) -> StartedRedis:
    """Start this run's Redis server; on any failure nothing is left behind."""
    deadline = time.monotonic() + settings.start_timeout
    binary = require_redis(settings.redis_server)
    sdir = ServerDir.create(
        service="redis",
        runtime_dir=settings.runtime_dir,
        run_id=run_id,
        owner=owner,
        pidfile="redis.pid",
        stop_signal=signal.SIGTERM,
    )
    with sdir.discarded_on_failure():
        sock_dir = sdir.path / "sock"
        sock_dir.mkdir(mode=0o700)
        socket_path = sock_dir / "redis.sock"
        log_path = sdir.path / "redis.log"
        conf = sdir.path / "redis.conf"
        password = secrets.token_urlsafe(18)
        sandbox_password = secrets.token_urlsafe(18)

        def launch(port: int) -> subprocess.Popen[bytes]:
            conf.touch(mode=0o600)
            conf.write_text(
                _config(port, sdir.path, password, sandbox_password, settings.redis_settings)
            )
            argv = [str(binary.path), str(conf)]
            return spawn(argv, log_path=log_path, account=Account(), cwd=sdir.path, env=clean_env())

        port = start_on_a_free_port(
            sdir,
            candidate_ports(settings.redis_port, "cleanroom_redis_port"),
            launch,
            functools.partial(_ping, socket_path, password),
            deadline=deadline,
            what=f"redis-server {binary.version} ({binary.path})",
            log_path=log_path,
            port_taken=lambda log: "Address already in use" in log,
        )
        server = RedisServer(
            provider="process",
            host="127.0.0.1",
            port=port,
            password=password,
            unix_socket=str(socket_path),
            version=binary.version,
            databases=DATABASES,
            username=ADMIN_USER,
            log=LogSource(kind="file", path=str(log_path)),
            sandbox_password=sandbox_password,
            dedicated=True,
        )
        return sdir.started_server(server)


def _ping(socket_path: Path, password: str) -> bool:
    import redis as redis_py

    if not socket_path.exists():
        return False
    client = redis_py.Redis(
        unix_socket_path=str(socket_path),
        username=ADMIN_USER,
        password=password,
        socket_timeout=1.0,
        socket_connect_timeout=1.0,
    )
    try:
        return bool(client.ping())
    finally:
        client.close()
