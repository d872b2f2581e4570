"""The process provider's MariaDB: ``mariadbd`` from the machine, started unprivileged.

``mariadb-install-db`` runs once per server version (its data directory is cached like
PostgreSQL's); each run copies the cache into RAM when there is room and starts ``mariadbd`` on
127.0.0.1 and a unix socket in a private directory, with durability off. Only the administrator
(``root``, a new random password each run) is left in the user table; no anonymous user, no
user authenticated by its unix account.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

from .. import datadir_cache
from ..binaries import MysqlBinaries, require_mysql
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
    spawn,
    start_on_a_free_port,
    unprivileged_account,
)
from .model import MysqlServer, quote_text

ADMIN = "root"
SERVER_OPTIONS = (
    "--no-defaults",
    "--bind-address=127.0.0.1",
    "--skip-name-resolve",
    "--skip-log-bin",
    "--performance-schema=OFF",
    "--innodb-buffer-pool-size=32M",
    "--innodb-log-file-size=4M",
    "--innodb-flush-log-at-trx-commit=0",
    "--innodb-doublewrite=0",
    "--sync-frm=0",
    "--max-connections=300",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_unicode_ci",
    "--local-infile=0",
    "--symbolic-links=0",
)
INSTALL_OPTIONS = (
    "--no-defaults",
    "--auth-root-authentication-method=normal",
    "--skip-test-db",
    "--skip-name-resolve",
    "--innodb-log-file-size=4M",
)


def _install_argv(binaries: MysqlBinaries, data: Path) -> list[str]:
    return [str(binaries.install_db), *INSTALL_OPTIONS, f"--datadir={data}"]


def _cache_key(binaries: MysqlBinaries, account: Account) -> str:
    blob = "\0".join([str(binaries.server), binaries.version, *INSTALL_OPTIONS, str(account.uid)])
    return f"{binaries.version}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def _init_sql(password: str) -> str:
    """Run by the server before it accepts connections: the administrator alone, with this
    run's password, on the socket and on 127.0.0.1."""
    pw = quote_text(password)
    return "\n".join(
        [
            "DELETE FROM mysql.global_priv WHERE NOT (User = 'root' AND Host = 'localhost') "
            "AND User <> 'mariadb.sys';",
            "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';",
            "FLUSH PRIVILEGES;",
            f"ALTER USER 'root'@'localhost' IDENTIFIED BY {pw};",
            f"CREATE USER 'root'@'127.0.0.1' IDENTIFIED BY {pw};",
            "GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;",
            "",
        ]
    )


def start_mysql(settings: ServiceSettings, *, run_id: str, owner: Owner) -> Started[MysqlServer]:
    """Start this run's MariaDB server; on any failure nothing is left behind."""
    deadline = time.monotonic() + settings.start_timeout
    binaries = require_mysql(settings.mysql_bin_dir)
    account = unprivileged_account("MariaDB", ("mysql", "nobody"))
    cached = datadir_cache.ensure_cached_datadir(
        "mysql",
        _cache_key(binaries, account),
        lambda data: _install_argv(binaries, data),
        valid=lambda data: (data / "mysql" / "global_priv.MAI").exists(),
        account=account,
        settings=settings,
        run_id=run_id,
        owner=owner,
        deadline=deadline,
    )
    sdir = ServerDir.create(
        service="mysql",
        runtime_dir=settings.runtime_dir,
        run_id=run_id,
        owner=owner,
        pidfile="sock/mysqld.pid",
        stop_signal=signal.SIGKILL,  # the data are thrown away: no need for a clean shutdown
        data_dir=data_root(settings.data_dir, settings.runtime_dir),
        group=account.gid,
    )
    with sdir.discarded_on_failure():
        return sdir.started_server(_launch(binaries, account, cached, sdir, settings, deadline))


def _own_file(path: Path, account: Account, text: str = "") -> Path:
    path.touch(mode=0o600)
    path.write_text(text)
    account.chown(path)
    return path


def _launch(
    binaries: MysqlBinaries,
    account: Account,
    cached: Path,
    sdir: ServerDir,
    settings: ServiceSettings,
    deadline: float,
) -> MysqlServer:
    datadir_cache.copy_tree(cached, sdir.data)
    datadir_cache.chown_tree(sdir.data, account)
    sock = sdir.path / "sock"
    sock.mkdir(mode=0o700)
    if account.gid is not None:  # as root: the server's group may create its socket here
        os.chown(sock, -1, account.gid)
        sock.chmod(0o770)
    files = sdir.path / "files"  # the only directory LOAD DATA INFILE / SELECT ... INTO OUTFILE see
    files.mkdir(mode=0o700)
    account.chown(files)
    password = secrets.token_urlsafe(18)
    init = _own_file(sdir.path / "init.sql", account, _init_sql(password))
    log_path = _own_file(sdir.path / "mysqld.log", account)
    socket_path = sock / "mysqld.sock"

    def launch(port: int) -> subprocess.Popen[bytes]:
        argv = [str(binaries.server), *SERVER_OPTIONS, f"--datadir={sdir.data}"]
        argv += [f"--port={port}", f"--socket={socket_path}", f"--pid-file={sock / 'mysqld.pid'}"]
        argv += [f"--log-error={log_path}", f"--init-file={init}", f"--secure-file-priv={files}"]
        argv += [f"--tmpdir={sdir.data}"]
        return spawn(argv, log_path=log_path, account=account, cwd=sdir.data, env=clean_env())

    server = MysqlServer(
        provider="process",
        host="127.0.0.1",
        port=0,
        user=ADMIN,
        password=password,
        unix_socket=str(socket_path),
        version=binaries.version,
        log=LogSource(kind="file", path=str(log_path)),
    )
    port = start_on_a_free_port(
        sdir,
        candidate_ports(0, "cleanroom_mysql_port"),
        launch,
        lambda: _answers(server, socket_path),
        deadline=deadline,
        what=f"mariadbd {binaries.version} ({binaries.server})",
        log_path=log_path,
        port_taken=lambda log: "Address already in use" in log or "Bind on TCP/IP port" in log,
    )
    init.unlink()  # the password has no business on disk once the server has read it
    return replace(server, port=port)


def _answers(server: MysqlServer, socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        server.connect(connect_timeout=1).close()
    except Exception as exc:
        if "Access denied" in str(exc):
            raise ServiceStartError(f"MariaDB refused its administrator: {exc}") from None
        return False
    return True
