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
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import pg_roles
from .binaries import PostgresBinaries, require_postgres
from .errors import ServiceStartError
from .model import LogSource, PostgresServer
from .registry import Owner, Started
from .settings import ServiceSettings
from .spawn import (
    Account,
    ServerDir,
    candidate_ports,
    clean_env,
    data_root,
    postgres_account,
    spawn,
    start_on_a_free_port,
)

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


def _valid_cache(entry: Path, binaries: PostgresBinaries) -> bool:
    try:
        return (entry / "complete").exists() and (
            (entry / "data" / "PG_VERSION").read_text().strip() == str(binaries.major)
        )
    except OSError:
        return False


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
    from filelock import FileLock, Timeout

    root = settings.cache_dir / "postgres"
    root.mkdir(parents=True, exist_ok=True)
    entry = root / cache_key(binaries, account)
    if _valid_cache(entry, binaries):
        return entry / "data"
    try:
        lock = FileLock(str(entry) + ".lock", timeout=max(0.1, deadline - time.monotonic()))
        lock.acquire()
    except Timeout:
        raise ServiceStartError(
            f"another run holds {entry}.lock and has been initialising the cached data directory "
            f"{entry} for longer than the start timeout: raise cleanroom_services_start_timeout, "
            f"or, if no other pytest run is going on, delete {entry}.lock"
        ) from None
    try:
        if _valid_cache(entry, binaries):
            return entry / "data"
        # initdb runs as the server's account, which may not be able to enter our cache directory
        # (e.g. /root/.cache): initialise inside the runtime directory, then move the result.
        work = ServerDir.create(
            service="initdb",
            runtime_dir=settings.runtime_dir,
            run_id=run_id,
            owner=owner,
            pidfile="",
            stop_signal=signal.SIGTERM,
        )
        try:
            account.chown(work.path)
            data = work.path / "data"
            log = work.path / "initdb.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [str(binaries.initdb), "-D", str(data), *initdb_args(binaries)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=work.path,
                    env=clean_env({"LC_ALL": "C", "LANG": "C"}),
                    start_new_session=True,
                    user=account.uid,
                    group=account.gid,
                    extra_groups=[] if account.uid is not None else None,
                )
                work.started(proc.pid)
                try:
                    code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    raise ServiceStartError(
                        f"initdb did not finish before the start timeout: {log.read_text()[-2000:]}"
                    ) from None
            if code != 0:
                raise ServiceStartError(
                    f"initdb ({binaries.initdb}) failed with status {code}:\n"
                    f"{log.read_text()[-3000:]}"
                )
            staging = root / f".{entry.name}.{secrets.token_hex(4)}"
            staging.mkdir()
            shutil.move(str(data), str(staging / "data"))
            (staging / "complete").write_text(f"{binaries.bin_dir}\n{binaries.version}\n")
            if entry.exists():
                shutil.rmtree(entry)  # an incomplete or outdated entry
            os.rename(staging, entry)
        finally:
            work.discard()
        return entry / "data"
    finally:
        lock.release()


def _copy_tree(src: Path, dst: Path) -> None:
    """Copy a data directory keeping modes and owners (GNU cp clones blocks where it can)."""
    if sys.platform.startswith("linux") and shutil.which("cp"):
        done = subprocess.run(
            ["cp", "-a", "--reflink=auto", str(src), str(dst)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return
        shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, symlinks=True)


def _chown_tree(path: Path, account: Account) -> None:
    if account.uid is None or path.stat().st_uid == account.uid:
        return
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), account.uid, account.gid or -1)
    os.chown(path, account.uid, account.gid or -1)


def start_postgres(settings: ServiceSettings, *, run_id: str, owner: Owner) -> StartedPostgres:
    """Start this run's PostgreSQL server; on any failure nothing is left behind."""
    deadline = time.monotonic() + settings.start_timeout
    binaries = require_postgres(settings.postgres_bin_dir)
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
        _copy_tree(cached, data)
        with contextlib.suppress(FileNotFoundError):
            (data / "postmaster.pid").unlink()
        _chown_tree(data, account)
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
    :mod:`.pg_roles`), and read the version."""
    import psycopg

    password = secrets.token_urlsafe(18)
    params: dict[str, Any] = {"host": str(sock), "port": port, "user": SUPERUSER}
    params["dbname"] = "postgres"
    with _first_connection(params, deadline) as conn:
        pg_roles.secure_superuser(conn, SUPERUSER, password)
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
