"""The process provider's PostgreSQL: a server started from the machine's own binaries.

``initdb`` runs once per server version and its data directory is cached
(``<cache>/postgres/<version>-<hash>``); each run copies the cache, so a later run starts in well
under a second. The server listens on 127.0.0.1 and on a unix socket in a private directory, with
durability off (fsync, synchronous_commit, full_page_writes): test data need not survive a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import datadir_cache
from ..binaries import PostgresBinaries, require_postgres
from ..errors import ServiceStartError
from ..model import LogSource
from ..registry import Owner, Started
from ..settings import ServiceSettings
from ..spawn import (
    Account,
    ServerDir,
    candidate_ports,
    clean_env,
    data_root,
    postgres_account,
    spawn,
    start_on_a_free_port,
)
from . import roles as pg_roles
from .log import POSTGRES_LOG_LINE_PREFIX
from .model import PostgresServer

if TYPE_CHECKING:
    import psycopg

#: What :func:`start_postgres` returns.
StartedPostgres = Started[PostgresServer]

SUPERUSER = "cleanroom"
SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "logging_collector": "off",
    "log_checkpoints": "off",  # CREATE DATABASE ... FILE_COPY checkpoints on every test
    "log_line_prefix": POSTGRES_LOG_LINE_PREFIX,  # a failing test's report keeps its own lines
    # The socket file is open to all; its directory decides who gets to it (see start_postgres).
    "unix_socket_permissions": "0777",
    "max_connections": "200",
}


def initdb_args(binaries: PostgresBinaries) -> list[str]:
    """Options of the cached cluster: trust on the private socket, password on TCP."""
    args = [
        "-U",
        SUPERUSER,
        "-E",
        "UTF8",
        "--no-locale",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "--no-sync",
        "--wal-segsize=1",  # a 1 MB WAL segment instead of 16 MB: less to copy per run
    ]
    if binaries.major >= 14:
        args.append("--no-instructions")
    return args


def cache_key(binaries: PostgresBinaries, account: Account) -> str:
    blob = "\0".join(
        [str(binaries.bin_dir), binaries.version, *initdb_args(binaries), str(account.uid)]
    )
    return f"{binaries.version}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def _valid_cache(data: Path, binaries: PostgresBinaries) -> bool:
    return (data / "PG_VERSION").read_text().strip() == str(binaries.major)


def ensure_cached_datadir(
    binaries: PostgresBinaries,
    account: Account,
    settings: ServiceSettings,
    *,
    run_id: str,
    owner: Owner,
    deadline: float,
) -> Path:
    """The cached, initialised data directory for this server version (created if missing)."""
    return datadir_cache.ensure_cached_datadir(
        "postgres",
        cache_key(binaries, account),
        lambda data: [str(binaries.initdb), "-D", str(data), *initdb_args(binaries)],
        valid=lambda data: _valid_cache(data, binaries),
        account=account,
        settings=settings,
        run_id=run_id,
        owner=owner,
        deadline=deadline,
    )


def start_postgres(settings: ServiceSettings, *, run_id: str, owner: Owner) -> StartedPostgres:
    """Start this run's PostgreSQL server; on any failure nothing is left behind."""
    deadline = time.monotonic() + settings.start_timeout
    binaries = require_postgres(settings.postgres_bin_dir, settings.postgres_version)
    account = postgres_account()
    cached = ensure_cached_datadir(
        binaries, account, settings, run_id=run_id, owner=owner, deadline=deadline
    )
    sdir = ServerDir.create(
        service="postgres",
        runtime_dir=settings.runtime_dir,
        run_id=run_id,
        owner=owner,
        pidfile="data/postmaster.pid",
        stop_signal=signal.SIGQUIT,  # immediate shutdown: the data are thrown away anyway
        data_dir=data_root(settings.data_dir, settings.runtime_dir),
        group=account.gid,
    )
    with sdir.discarded_on_failure():
        data = sdir.data
        sock = sdir.path / "sock"
        log_path = sdir.path / "postgres.log"
        datadir_cache.copy_tree(cached, data)
        with contextlib.suppress(FileNotFoundError):
            (data / "postmaster.pid").unlink()
        datadir_cache.chown_tree(data, account)
        sock.mkdir(mode=0o700)
        if account.gid is not None:
            # As root the server runs as another account: the socket directory stays ours (so a
            # sandbox whose root maps to us, without CAP_DAC_OVERRIDE, can enter it) and lets the
            # server's group create its socket there. Nobody else can reach it.
            os.chown(sock, -1, account.gid)
            sock.chmod(0o770)
        log_path.touch()
        account.chown(log_path)
        hba = sdir.path / "pg_hba.conf"
        hba.write_text(pg_roles.hba_rules(SUPERUSER, bootstrap=True))
        account.chown(hba)

        def launch(port: int) -> subprocess.Popen[bytes]:
            argv = [str(binaries.postgres), "-D", str(data), "-c", f"port={port}"]
            argv += ["-c", f"unix_socket_directories={sock}"]
            argv += ["-c", f"cluster_name=cleanroom-{run_id}", "-c", f"hba_file={hba}"]
            for key, value in {**SERVER_SETTINGS, **dict(settings.postgres_settings)}.items():
                argv += ["-c", f"{key}={value}"]
            return spawn(argv, log_path=log_path, account=account, cwd=data, env=clean_env())

        port = start_on_a_free_port(
            sdir,
            candidate_ports(settings.postgres_port, "cleanroom_postgres_port"),
            launch,
            lambda: _postmaster_ready(data),
            deadline=deadline,
            what=f"postgres {binaries.version} ({binaries.postgres})",
            log_path=log_path,
            port_taken=_port_taken,
        )
        return sdir.started_server(_finish(port, sock, hba, log_path, deadline))


def _port_taken(log: str) -> bool:
    return (
        "could not bind" in log
        or "Address already in use" in log
        or "could not create lock file" in log
    )


def _postmaster_ready(data: Path) -> bool:
    lines = (data / "postmaster.pid").read_text().splitlines()
    return len(lines) >= 8 and lines[7].strip() == "ready"


def _finish(port: int, sock: Path, hba: Path, log_path: Path, deadline: float) -> PostgresServer:
    """Give the superuser a fresh password, then require passwords everywhere (see
    :mod:`.roles`), and read the version."""
    import psycopg

    password = secrets.token_urlsafe(18)
    params: dict[str, Any] = {"host": str(sock), "port": port, "user": SUPERUSER}
    params["dbname"] = "postgres"
    with _first_connection(params, deadline) as conn:
        pg_roles.secure_superuser(conn, SUPERUSER, password)
        _warm_template0(conn, params)
        loaded = conn.execute("SELECT pg_conf_load_time()").fetchone()
        hba.write_text(pg_roles.hba_rules(SUPERUSER))
        conn.execute("SELECT pg_reload_conf()")
    # The postmaster reloads pg_hba.conf when it gets to the signal: wait until a new session
    # reports the reload, so that the trust rule is gone before anyone else can connect.
    while True:
        with psycopg.connect(**params, password=password, autocommit=True) as conn:
            row = conn.execute(
                "SELECT pg_conf_load_time() > %s, current_setting('server_version')", loaded
            ).fetchone()
            version_num = conn.info.server_version
        if row and row[0]:
            break
        if time.monotonic() >= deadline:
            raise ServiceStartError("postgres did not reload pg_hba.conf before the start timeout")
        time.sleep(0.005)
    return PostgresServer(
        provider="process",
        host="127.0.0.1",
        port=port,
        user=SUPERUSER,
        password=password,
        unix_socket_dir=str(sock),
        version=str(row[1]).split()[0],
        version_num=version_num,
        log=LogSource(kind="file", path=str(log_path)),
        manages_roles=True,
    )


def _warm_template0(admin: psycopg.Connection[Any], params: dict[str, Any]) -> None:
    """Connect to ``template0`` once, so that it holds a relation cache init file
    (``pg_internal.init``) which every test's database then copies: the first session in a
    fresh clone reads it instead of rebuilding the cache from the catalogs (as for a database
    made from ``template1``). Connections to ``template0`` are refused again right after."""
    import psycopg

    admin.execute("ALTER DATABASE template0 ALLOW_CONNECTIONS true")
    try:
        psycopg.connect(**{**params, "dbname": "template0"}).close()
    finally:
        admin.execute("ALTER DATABASE template0 ALLOW_CONNECTIONS false")


def _first_connection(params: dict[str, Any], deadline: float) -> psycopg.Connection[Any]:
    """The first connection to a server that has just said it is ready (retried meanwhile)."""
    import psycopg

    while True:
        try:
            return psycopg.connect(**params, autocommit=True)
        except psycopg.OperationalError as exc:  # e.g. "the database system is starting up"
            if time.monotonic() >= deadline:
                raise ServiceStartError(f"postgres accepted no connection: {exc}") from None
            time.sleep(0.01)
