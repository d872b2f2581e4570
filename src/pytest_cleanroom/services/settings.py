"""Where the services' settings come from: command line, then environment, then ini, then defaults.

Only the standard library is imported here: the plugin reads these on every pytest start.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .engines import ENGINES
from .errors import ServiceConfigError

PROVIDERS: tuple[str, ...] = ("auto", "process", *ENGINES, "external")
DEFAULT_POSTGRES_IMAGE = "cleanroom/postgres:15"
DEFAULT_REDIS_IMAGE = "cleanroom/redis:7"
DEFAULT_MYSQL_IMAGE = "cleanroom/mariadb:10.11"
DEFAULT_START_TIMEOUT = 60.0

ENV_PROVIDER = "CLEANROOM_SERVICES"
ENV_POSTGRES_URL = "CLEANROOM_POSTGRES_URL"
ENV_REDIS_URL = "CLEANROOM_REDIS_URL"
ENV_MYSQL_URL = "CLEANROOM_MYSQL_URL"
ENV_CACHE_DIR = "CLEANROOM_SERVICES_CACHE_DIR"
ENV_RUNTIME_DIR = "CLEANROOM_SERVICES_RUNTIME_DIR"
ENV_DATA_DIR = "CLEANROOM_SERVICES_DATA_DIR"
ENV_START_TIMEOUT = "CLEANROOM_SERVICES_START_TIMEOUT"

# ini key -> (help, default shown in --help)
INI_KEYS: dict[str, tuple[str, str]] = {
    "cleanroom_services": (f"Where the services come from: {'|'.join(PROVIDERS)}.", "auto"),
    "cleanroom_postgres_url": (f"PostgreSQL URL of an external server ({ENV_POSTGRES_URL}).", ""),
    "cleanroom_redis_url": (f"Redis URL of an external server ({ENV_REDIS_URL}).", ""),
    "cleanroom_mysql_url": (f"MariaDB URL of an external server ({ENV_MYSQL_URL}).", ""),
    "cleanroom_postgres_image": ("Image of the container providers' PostgreSQL.", ""),
    "cleanroom_redis_image": ("Image of the container providers' Redis.", ""),
    "cleanroom_mysql_image": ("Image of the container providers' MariaDB.", ""),
    "cleanroom_postgres_template": (
        "SQL files (relative to the ini file) and/or module:function callables, one a line, "
        "that load the template every test database is cloned from.",
        "",
    ),
    "cleanroom_postgres_settings": (
        "PostgreSQL server settings, one 'name = value' a line (e.g. shared_preload_libraries = "
        "pg_stat_statements, wal_level = logical, max_connections = 300); part of the server's "
        "identity.",
        "",
    ),
    "cleanroom_redis_settings": (
        "Redis server settings, one 'name = value' a line (e.g. maxmemory-policy = allkeys-lru); "
        "part of the server's identity.",
        "",
    ),
    "cleanroom_django": (
        "With pytest-django: 'auto' puts its PostgreSQL and MySQL test databases on the run's "
        "servers, 'off' leaves DATABASES as they are.",
        "auto",
    ),
    "cleanroom_services_start_timeout": ("Seconds a server may take to become ready.", "60"),
    "cleanroom_postgres_bin_dir": ("Directory holding initdb and postgres (process provider).", ""),
    "cleanroom_postgres_version": (
        "PostgreSQL major version of the process provider's server (e.g. 16): the first "
        "installation of that major; part of the server's identity.",
        "",
    ),
    "cleanroom_redis_server": ("Path of redis-server (process provider).", ""),
    "cleanroom_mysql_bin_dir": (
        "Directory holding MariaDB's mariadbd and mariadb-install-db (process provider).",
        "",
    ),
    "cleanroom_postgres_port": ("Fixed TCP port of the process provider's PostgreSQL.", "0"),
    "cleanroom_redis_port": ("Fixed TCP port of the process provider's Redis.", "0"),
    "cleanroom_services_cache_dir": (
        f"Cache of initialised data directories ({ENV_CACHE_DIR}).",
        "",
    ),
    "cleanroom_services_data_dir": (
        f"Where the process provider puts PostgreSQL data ({ENV_DATA_DIR}); default: /dev/shm "
        "when it has room (RAM is faster than disk), else the runtime directory.",
        "",
    ),
    "cleanroom_services_runtime_dir": (
        f"Directory of running servers and the leftovers registry ({ENV_RUNTIME_DIR}).",
        "",
    ),
}


def default_cache_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/pytest-cleanroom`` (``~/.cache/pytest-cleanroom``)."""
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pytest-cleanroom"


def default_runtime_dir(env: Mapping[str, str]) -> Path:
    """A short per-user directory (unix socket paths are limited to about 100 bytes)."""
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and len(runtime) < 40 and Path(runtime).is_dir():
        return Path(runtime) / "pytest-cleanroom"
    return Path(tempfile.gettempdir()) / f"pytest-cleanroom-{os.getuid()}"


@dataclass(frozen=True)
class ServiceSettings:
    """Every knob of the services, already validated."""

    provider: str = "auto"
    provider_source: str = "default"
    postgres_url: str | None = None
    postgres_url_source: str = ""
    redis_url: str | None = None
    redis_url_source: str = ""
    mysql_url: str | None = None
    mysql_url_source: str = ""
    postgres_image: str = DEFAULT_POSTGRES_IMAGE
    redis_image: str = DEFAULT_REDIS_IMAGE
    mysql_image: str = DEFAULT_MYSQL_IMAGE
    postgres_template: tuple[str, ...] = ()
    #: Server settings given on the command line of the process and container providers' server.
    postgres_settings: tuple[tuple[str, str], ...] = ()
    #: Settings written into the config file of the process and container providers' Redis.
    redis_settings: tuple[tuple[str, str], ...] = ()
    start_timeout: float = DEFAULT_START_TIMEOUT
    postgres_bin_dir: Path | None = None
    #: The major version the process provider's server must have (``None``: the first found).
    postgres_version: int | None = None
    redis_server: Path | None = None
    mysql_bin_dir: Path | None = None
    postgres_port: int = 0
    redis_port: int = 0
    cache_dir: Path = field(default_factory=lambda: default_cache_dir(os.environ))
    runtime_dir: Path = field(default_factory=lambda: default_runtime_dir(os.environ))
    data_dir: Path | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    #: pytest-django's PostgreSQL test databases go to the run's server (ini cleanroom_django).
    django: bool = True

    @property
    def postgres_identity(self) -> tuple[tuple[str, str], ...]:
        """What makes two PostgreSQL servers of a run different: the server settings, the
        major version and the binaries' directory (when set)."""
        chosen = (("bin_dir", self.postgres_bin_dir), ("version", self.postgres_version))
        return self.postgres_settings + tuple((k, str(v)) for k, v in chosen if v is not None)

    def check_postgres_major(self, version_num: int, what: str) -> None:
        """Refuse a server (``what``) whose major version is not :attr:`postgres_version`."""
        wanted = self.postgres_version
        if wanted is not None and version_num // 10000 != wanted:
            raise ServiceConfigError(
                f"cleanroom_postgres_version asks for PostgreSQL {wanted} but {what} runs "
                f"{version_num // 10000}: point it at a server of {wanted} (the container "
                "providers: ini cleanroom_postgres_image), or use the process provider"
            )

    def with_changes(self, **changes: Any) -> ServiceSettings:
        """A copy with ``changes`` (used by tests and by library callers)."""
        return replace(self, **changes)

    @classmethod
    def resolve(
        cls,
        *,
        option: Callable[[str], Any],
        ini: Callable[[str], Any],
        env: Mapping[str, str],
        base_dir: Path,
    ) -> ServiceSettings:
        """Read every setting: ``option(name)`` for flags, ``ini(key)`` for ini keys."""
        provider, provider_source = _first(
            ("--cleanroom-services", option("cleanroom_services")),
            (ENV_PROVIDER, env.get(ENV_PROVIDER)),
            ("ini cleanroom_services", ini("cleanroom_services")),
            default="auto",
        )
        if provider not in PROVIDERS:
            raise ServiceConfigError(
                f"{provider_source}={provider!r} is not a services provider: "
                f"choose one of {', '.join(PROVIDERS)}"
            )
        pg_url, pg_src = _first(
            ("--cleanroom-postgres-url", option("cleanroom_postgres_url")),
            (ENV_POSTGRES_URL, env.get(ENV_POSTGRES_URL)),
            ("ini cleanroom_postgres_url", ini("cleanroom_postgres_url")),
        )
        redis_url, redis_src = _first(
            ("--cleanroom-redis-url", option("cleanroom_redis_url")),
            (ENV_REDIS_URL, env.get(ENV_REDIS_URL)),
            ("ini cleanroom_redis_url", ini("cleanroom_redis_url")),
        )
        mysql_url, mysql_src = _first(
            ("--cleanroom-mysql-url", option("cleanroom_mysql_url")),
            (ENV_MYSQL_URL, env.get(ENV_MYSQL_URL)),
            ("ini cleanroom_mysql_url", ini("cleanroom_mysql_url")),
        )
        if mysql_url and not mysql_url.startswith(("mysql://", "mariadb://")):
            raise ServiceConfigError(
                f"{mysql_src} must be a mysql:// URL, e.g. mysql://root:password@127.0.0.1:3306/ "
                "(or mysql://root:password@localhost/?unix_socket=/run/mysqld/mysqld.sock)"
            )
        if pg_url and not pg_url.startswith(("postgres://", "postgresql://")):
            raise ServiceConfigError(
                f"{pg_src} must be a postgresql:// URL, e.g. "
                "postgresql://user:password@127.0.0.1:5432/postgres"
            )
        if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ServiceConfigError(
                f"{redis_src} must be a redis://, rediss:// or unix:// URL, e.g. "
                "redis://:password@127.0.0.1:6379/0"
            )
        timeout_text, timeout_src = _first(
            (ENV_START_TIMEOUT, env.get(ENV_START_TIMEOUT)),
            ("ini cleanroom_services_start_timeout", ini("cleanroom_services_start_timeout")),
            default=str(DEFAULT_START_TIMEOUT),
        )
        cache_dir, _ = _first(
            (ENV_CACHE_DIR, env.get(ENV_CACHE_DIR)),
            ("ini", ini("cleanroom_services_cache_dir")),
        )
        runtime_dir, _ = _first(
            (ENV_RUNTIME_DIR, env.get(ENV_RUNTIME_DIR)),
            ("ini", ini("cleanroom_services_runtime_dir")),
        )
        data_dir, _ = _first(
            (ENV_DATA_DIR, env.get(ENV_DATA_DIR)),
            ("ini", ini("cleanroom_services_data_dir")),
        )
        bin_dir = _text(ini("cleanroom_postgres_bin_dir"))
        redis_server = _text(ini("cleanroom_redis_server"))
        return cls(
            provider=provider,
            provider_source=provider_source,
            postgres_url=pg_url,
            postgres_url_source=pg_src,
            redis_url=redis_url,
            redis_url_source=redis_src,
            mysql_url=mysql_url,
            mysql_url_source=mysql_src,
            postgres_image=_text(ini("cleanroom_postgres_image")) or DEFAULT_POSTGRES_IMAGE,
            redis_image=_text(ini("cleanroom_redis_image")) or DEFAULT_REDIS_IMAGE,
            mysql_image=_text(ini("cleanroom_mysql_image")) or DEFAULT_MYSQL_IMAGE,
            postgres_template=_lines(ini("cleanroom_postgres_template")),
            postgres_settings=server_settings(
                _lines(ini("cleanroom_postgres_settings")), "ini cleanroom_postgres_settings"
            ),
            redis_settings=server_settings(
                _lines(ini("cleanroom_redis_settings")),
                "ini cleanroom_redis_settings",
                kind="redis",
            ),
            start_timeout=_positive_seconds(timeout_text, timeout_src),
            postgres_bin_dir=_path(bin_dir, base_dir),
            postgres_version=postgres_major(
                _text(ini("cleanroom_postgres_version")), "ini cleanroom_postgres_version"
            ),
            redis_server=_path(redis_server, base_dir),
            mysql_bin_dir=_path(_text(ini("cleanroom_mysql_bin_dir")), base_dir),
            postgres_port=_port(ini("cleanroom_postgres_port"), "cleanroom_postgres_port"),
            redis_port=_port(ini("cleanroom_redis_port"), "cleanroom_redis_port"),
            cache_dir=_path(cache_dir, base_dir) or default_cache_dir(env),
            runtime_dir=_path(runtime_dir, base_dir) or default_runtime_dir(env),
            data_dir=_path(data_dir, base_dir),
            base_dir=base_dir,
            django=_switch(ini("cleanroom_django"), "cleanroom_django"),
        )


def postgres_major(value: object, source: str) -> int | None:
    """A PostgreSQL major version (``16``; ``None`` when unset), or one error naming ``source``."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if not text.isdigit() or not 9 <= int(text) < 100:
        raise ServiceConfigError(
            f"{source}={value!r} is not a PostgreSQL major version: give one number, e.g. 16"
        )
    return int(text)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):
        value = " ".join(str(v) for v in value)
    text = str(value).strip()
    return text or None


def _first(*candidates: tuple[str, Any], default: str | None = None) -> tuple[Any, str]:
    for source, value in candidates:
        text = _text(value)
        if text is not None:
            return text, source
    return default, "default"


def _lines(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else str(value).splitlines()
    texts = (str(item).strip() for item in items)
    return tuple(t for t in texts if t and not t.startswith("#"))


SETTING_NAMES = {
    "postgres": (re.compile(r"^[a-z_][a-z0-9_.]*$"), "wal_level = logical"),
    "redis": (re.compile(r"^[a-z][a-z0-9-]*$"), "maxmemory-policy = allkeys-lru"),
}
#: Redis settings that would move the server's files, ports, users or persistence: the plugin's.
REDIS_RESERVED = frozenset(
    {
        "port",
        "bind",
        "unixsocket",
        "unixsocketperm",
        "dir",
        "pidfile",
        "daemonize",
        "user",
        "aclfile",
        "requirepass",
        "include",
        "databases",
        "save",
        "appendonly",
        "dbfilename",
        "logfile",
        "tls-port",
        "protected-mode",
        "rename-command",
        "loadmodule",
        "replicaof",
        "slaveof",
        "masterauth",
    }
)


def server_settings(
    lines: Iterable[str], source: str, *, kind: str = "postgres"
) -> tuple[tuple[str, str], ...]:
    """``name = value`` lines as sorted pairs (sorted: the server's identity ignores order)."""
    pattern, example = SETTING_NAMES[kind]
    pairs: dict[str, str] = {}
    for line in lines:
        name, sep, value = (part.strip() for part in line.partition("="))
        value = value.strip("'\"")
        if not sep or not pattern.match(name.lower()) or not value or "\n" in value:
            raise ServiceConfigError(f"{source}: {line!r} is not 'name = value' (e.g. '{example}')")
        if kind == "redis" and name.lower() in REDIS_RESERVED:
            raise ServiceConfigError(
                f"{source}: {name!r} is set by the plugin (its files, ports, users and "
                "persistence): leave it out"
            )
        pairs[name.lower()] = value
    return tuple(sorted(pairs.items()))


def _positive_seconds(text: str, source: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ServiceConfigError(f"{source}={text!r} is not a number of seconds") from None
    if not 0 < value < float("inf"):
        raise ServiceConfigError(f"{source}={text!r} must be a positive number of seconds")
    return value


def _port(value: Any, key: str) -> int:
    text = _text(value)
    if text is None:
        return 0
    try:
        port = int(text)
    except ValueError:
        raise ServiceConfigError(f"ini {key}={text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise ServiceConfigError(f"ini {key}={port} is outside 0..65535 (0 picks a free port)")
    return port


def _switch(value: Any, key: str) -> bool:
    """``auto`` (the default) or ``off``."""
    text = (_text(value) or "auto").lower()
    if text not in ("auto", "off"):
        raise ServiceConfigError(f"ini {key}={text!r} must be 'auto' or 'off'")
    return text == "auto"


def _path(text: str | None, base: Path) -> Path | None:
    if not text:
        return None
    path = Path(os.path.expanduser(text))
    return path if path.is_absolute() else base / path
