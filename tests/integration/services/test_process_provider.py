"""The process provider against the machine's real PostgreSQL and Redis binaries."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_py

from pytest_cleanroom.services import cleanup, spawn
from pytest_cleanroom.services.binaries import require_postgres, require_redis
from pytest_cleanroom.services.errors import ServiceStartError, ServiceUnavailableError
from pytest_cleanroom.services.postgres import process as pg_process
from pytest_cleanroom.services.redis import process as redis_process
from pytest_cleanroom.services.registry import Owner, Registry, Started
from pytest_cleanroom.services.settings import ServiceSettings
from tests.conftest import require_binary

from .conftest import leftovers, processes_under

pytestmark = pytest.mark.integration


@pytest.fixture
def listener() -> Iterator[int]:
    """Another program holding a TCP port on 127.0.0.1."""
    code = (
        "import socket,sys;s=socket.socket();s.bind(('127.0.0.1',0));s.listen();"
        "print(s.getsockname()[1],flush=True);sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    yield port
    proc.kill()
    proc.wait()


def assert_nothing_left(runtime_dir: Path) -> None:
    assert processes_under(runtime_dir) == []
    assert leftovers(runtime_dir) == []
    assert list(Registry(runtime_dir).records()) == []


def stop(started: Started[Any]) -> None:
    cleanup.stop(started.handle)
    started.registry.remove(started.record_id)


@contextlib.contextmanager
def running(
    start: Callable[..., Started[Any]], settings: ServiceSettings, run_id: str
) -> Iterator[Any]:
    """The server ``start`` starts, stopped at the end of the block; nothing may be left."""
    started = start(settings, run_id=run_id, owner=Owner.current())
    try:
        yield started.server
    finally:
        stop(started)
    assert_nothing_left(settings.runtime_dir)


def assert_answers(server: Any) -> None:
    with server.connect() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.usefixtures("need_postgres")
def test_postgres_is_private_fast_and_removed_without_a_trace(
    settings: ServiceSettings, runtime_dir: Path
) -> None:
    with running(pg_process.start_postgres, settings, "t1") as server:
        assert server.provider == "process"
        assert server.host == "127.0.0.1"
        assert server.version.split(".")[0] == str(require_postgres().major)
        with server.connect(autocommit=True) as conn:
            settings_now = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN "
                    "('fsync', 'synchronous_commit', 'full_page_writes', 'listen_addresses')"
                ).fetchall()
            )
        assert settings_now == {
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "listen_addresses": "127.0.0.1",
        }
        # The socket directory is not open to other users.
        mode = stat.S_IMODE(Path(server.unix_socket_dir or "").stat().st_mode)
        assert mode & 0o007 == 0
        # TCP needs the password; with it, it works.
        with psycopg.connect(server.dsn()) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("cleanroom",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(host="127.0.0.1", port=server.port, user="cleanroom", password="nope")
        assert processes_under(runtime_dir)


@pytest.mark.usefixtures("need_postgres")
def test_template0_stays_closed_and_its_clones_inherit_a_warm_relation_cache(
    settings: ServiceSettings,
) -> None:
    with running(pg_process.start_postgres, settings, "t0") as server:
        with server.connect(autocommit=True) as conn:
            row = conn.execute(
                "SELECT datallowconn, oid FROM pg_database WHERE datname = 'template0'"
            ).fetchone()
            conn.execute("CREATE DATABASE clone TEMPLATE template0 STRATEGY FILE_COPY")
            clone_oid = conn.execute(
                "SELECT oid FROM pg_database WHERE datname = 'clone'"
            ).fetchone()
            data = Path(conn.execute("SHOW data_directory").fetchone()[0])  # type: ignore[index]
        assert row is not None
        assert clone_oid is not None
        allowed, template_oid = row
        # What the start's one session in template0 left, so that a test's first session reads
        # its relation cache from a file instead of rebuilding it from the catalogs.
        assert (data / "base" / str(template_oid) / "pg_internal.init").is_file()
        assert (data / "base" / str(clone_oid[0]) / "pg_internal.init").is_file()
        assert allowed is False  # as initdb left it
        with pytest.raises(psycopg.OperationalError, match="not currently accepting"):
            server.connect("template0").close()
        with server.connect("clone") as conn:
            assert conn.execute("SELECT count(*) FROM pg_class").fetchone() != (0,)


@pytest.mark.usefixtures("need_postgres")
def test_initialised_data_directory_is_cached_per_version(
    settings: ServiceSettings, runtime_dir: Path, tmp_path: Path
) -> None:
    settings = settings.with_changes(cache_dir=tmp_path / "cache")
    first = pg_process.start_postgres(settings, run_id="c1", owner=Owner.current())
    stop(first)
    (entry,) = (tmp_path / "cache" / "postgres").glob("*-*[!k]")  # not the .lock file
    assert entry.name.startswith(first.server.version + "-")
    marker = (entry / "complete").stat()
    with running(pg_process.start_postgres, settings, "c2") as second:
        # The second run copied the cache instead of running initdb again.
        again = (entry / "complete").stat()
        assert (again.st_ino, again.st_mtime_ns) == (marker.st_ino, marker.st_mtime_ns)
        # ... and a test's writes never reach the cache.
        with second.connect(autocommit=True) as conn:
            conn.execute("CREATE DATABASE scribble")
        assert not any(p.name == "scribble" for p in (entry / "data").rglob("scribble"))


@pytest.mark.usefixtures("need_postgres")
def test_a_corrupt_cache_entry_is_rebuilt(
    settings: ServiceSettings, runtime_dir: Path, tmp_path: Path
) -> None:
    settings = settings.with_changes(cache_dir=tmp_path / "cache")
    stop(pg_process.start_postgres(settings, run_id="k1", owner=Owner.current()))
    (entry,) = (p for p in (tmp_path / "cache" / "postgres").iterdir() if p.is_dir())
    # A run killed while publishing the cache: version file garbled, marker gone.
    (entry / "data" / "PG_VERSION").write_text("garbage\n")
    (entry / "complete").unlink()
    with running(pg_process.start_postgres, settings, "k2") as server:
        assert_answers(server)
        assert (entry / "complete").exists()


@pytest.mark.usefixtures("need_postgres")
def test_stale_lock_file_and_stale_postmaster_pid_do_not_block(
    settings: ServiceSettings, runtime_dir: Path, tmp_path: Path
) -> None:
    settings = settings.with_changes(cache_dir=tmp_path / "cache")
    stop(pg_process.start_postgres(settings, run_id="s1", owner=Owner.current()))
    (entry,) = (p for p in (tmp_path / "cache" / "postgres").iterdir() if p.is_dir())
    # What a SIGKILLed run can leave: its lock file, and a postmaster.pid naming a dead process.
    Path(f"{entry}.lock").write_text("12345\n")
    dead = subprocess.Popen(["true"])
    dead.wait()
    (entry / "data" / "postmaster.pid").write_text(f"{dead.pid}\n{entry}/data\n")
    with running(pg_process.start_postgres, settings, "s2") as server:
        assert_answers(server)


@pytest.mark.parametrize("service", ["postgres", "redis"])
def test_fixed_port_taken_by_another_program(
    settings: ServiceSettings,
    runtime_dir: Path,
    listener: int,
    service: str,
    request: pytest.FixtureRequest,
) -> None:
    request.getfixturevalue(f"need_{service}")
    start = pg_process.start_postgres if service == "postgres" else redis_process.start_redis
    settings = settings.with_changes(**{f"{service}_port": listener})
    with pytest.raises(ServiceStartError) as info:
        start(settings, run_id="p1", owner=Owner.current())
    message = str(info.value)
    assert f"port {listener} on 127.0.0.1" in message
    assert f"cleanroom_{service}_port" in message
    assert_nothing_left(runtime_dir)


@pytest.mark.usefixtures("need_postgres", "need_redis")
def test_a_port_grabbed_before_the_server_binds_it_is_retried(
    settings: ServiceSettings,
    runtime_dir: Path,
    listener: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The race (another program binds the free port between our check and the server's bind)
    # cannot be timed for real, so the port picker is made to offer the taken port first; the
    # conflict itself, the server's failure and the retry are real.
    offered: list[int] = []
    real_free_port = spawn.free_port

    def first_taken() -> int:
        port = listener if not offered else real_free_port()
        offered.append(port)
        return port

    monkeypatch.setattr(spawn, "free_port", first_taken)
    with running(pg_process.start_postgres, settings, "r1") as pg:
        assert offered[0] == listener
        assert pg.port != listener
        assert "could not bind" in Path(pg.log.path or "").read_text()
    offered.clear()
    with running(redis_process.start_redis, settings, "r2") as rd:
        assert offered[0] == listener
        assert rd.port not in (listener, 0)
        assert rd.client().ping()


@pytest.mark.usefixtures("need_postgres")
def test_start_timeout_is_a_hard_limit(settings: ServiceSettings, runtime_dir: Path) -> None:
    # Preparing the server (copying the cached data directory) outlasts 1 ms: it is never
    # launched, so it cannot be found ready at a first look by a process the machine paused.
    settings = settings.with_changes(start_timeout=0.001)
    with pytest.raises(ServiceStartError, match="was not launched: the start timeout passed"):
        pg_process.start_postgres(settings, run_id="to", owner=Owner.current())
    assert_nothing_left(runtime_dir)


@pytest.mark.usefixtures("need_postgres")
def test_an_initdb_slower_than_the_start_timeout_names_the_setting(
    settings: ServiceSettings, runtime_dir: Path, tmp_path: Path
) -> None:
    # A cold cache of data directories, so initdb runs (the VM's emulated initdb took minutes).
    settings = settings.with_changes(start_timeout=0.001, cache_dir=tmp_path / "cache")
    with pytest.raises(
        ServiceStartError,
        match=r"^/\S+/initdb did not finish before the start timeout \(0\.001 s; raise "
        r"cleanroom_services_start_timeout if the machine is slow\); its output:\n",
    ):
        pg_process.start_postgres(settings, run_id="slow", owner=Owner.current())
    assert_nothing_left(runtime_dir)


def test_missing_binaries_name_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailableError, match=r"apt-get install postgresql.*brew"):
        require_postgres(tmp_path)
    with pytest.raises(ServiceUnavailableError, match=r"apt-get install redis-server.*brew"):
        require_redis(tmp_path / "redis-server")


@pytest.mark.usefixtures("need_redis")
def test_redis_needs_its_password_on_tcp_and_listens_on_loopback(
    settings: ServiceSettings, runtime_dir: Path
) -> None:
    with running(redis_process.start_redis, settings, "rd") as server:
        with pytest.raises(redis_py.AuthenticationError):
            redis_py.Redis(host="127.0.0.1", port=server.port).ping()
        client = redis_py.Redis.from_url(server.url(5))
        client.set("k", "v")
        assert server.client(5).get("k") == b"v"  # the unix socket reaches the same data
        assert server.client(6).get("k") is None
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("save") == {"save": ""}
        assert server.databases >= 16
        client.close()
        for address in _non_loopback_ipv4():  # not reachable on another local address
            with socket.socket() as sock:
                assert sock.connect_ex((address, server.port)) != 0


def _non_loopback_ipv4() -> list[str]:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True)
    addresses = [line.split()[3].split("/")[0] for line in out.stdout.splitlines()]
    return [a for a in addresses if not a.startswith("127.")]


AS_ORDINARY_USER = """
import json, os, sys
from pathlib import Path

import psycopg

from pytest_cleanroom.services import cleanup, spawn
from pytest_cleanroom.services.postgres import process as pg_process
from pytest_cleanroom.services.registry import Owner
from pytest_cleanroom.services.settings import ServiceSettings

runtime, data, cache = map(Path, sys.argv[1:4])
settings = ServiceSettings(
    runtime_dir=runtime, data_dir=data, cache_dir=cache, start_timeout=60.0, base_dir=runtime
)
started = pg_process.start_postgres(settings, run_id="nr", owner=Owner.current())
server = started.server
try:
    status = Path(f"/proc/{started.handle['pid']}/status").read_text()
    socket_dir = os.stat(server.unix_socket_dir)
    with server.connect() as conn:  # the unix socket, trusted
        user = conn.execute("SELECT current_user").fetchone()[0]
    with psycopg.connect(server.dsn()) as conn:  # TCP, with the password
        tcp = conn.execute("SELECT 1").fetchone()[0]
    report = {
        "euid": os.geteuid(),
        "account_uid": spawn.postgres_account().uid,
        "server_uid": int(next(l for l in status.splitlines() if l.startswith("Uid:")).split()[1]),
        "user": user,
        "tcp": tcp,
        "socket_dir": [socket_dir.st_uid, socket_dir.st_mode & 0o777],
    }
finally:
    cleanup.stop(started.handle)
    started.registry.remove(started.record_id)
print(json.dumps(report))
"""


@pytest.mark.usefixtures("need_postgres")
def test_an_ordinary_user_runs_initdb_and_postgres_as_itself(
    settings: ServiceSettings, runtime_dir: Path
) -> None:
    # PostgreSQL refuses root, so as root the provider switches to the 'postgres' account; an
    # ordinary user runs initdb and postgres directly. When the tests run as root, the provider
    # runs in a child switched to 'nobody' (setpriv), with directories of its own.
    prefix: list[str] = []
    uid = os.geteuid()
    cache = Path(tempfile.mkdtemp(prefix="crc-", dir="/tmp"))
    data = settings.data_dir
    assert data is not None
    if uid == 0:
        require_binary("setpriv", "apt-get install util-linux")
        nobody = pwd.getpwnam("nobody")
        uid = nobody.pw_uid
        prefix = ["setpriv", f"--reuid={uid}", f"--regid={nobody.pw_gid}", "--clear-groups", "--"]
        for path in (runtime_dir, cache):
            os.chown(path, uid, nobody.pw_gid)
    try:
        done = subprocess.run(
            [
                *prefix,
                sys.executable,
                "-c",
                AS_ORDINARY_USER,
                str(runtime_dir),
                str(data),
                str(cache),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "HOME": str(cache), "PYTHONDONTWRITEBYTECODE": "1"},
            check=False,
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["euid"] == uid != 0
        assert report["account_uid"] is None  # no account switch: the caller itself
        assert report["server_uid"] == uid
        assert report["user"] == "cleanroom"
        assert report["tcp"] == 1
        assert report["socket_dir"] == [uid, 0o700]  # the caller's alone
        # The initialised data directory was cached for the next run, as the caller's.
        (entry,) = (p for p in (cache / "postgres").iterdir() if p.is_dir())
        assert (entry / "data" / "PG_VERSION").stat().st_uid == uid
        assert_nothing_left(runtime_dir)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
