"""A sandboxed command given ``postgres`` or ``redis`` gets least privilege, on every backend.

Each attack runs inside a ``locked`` sandbox (bubblewrap, unshare, docker) that was given the
service the way the fixtures give it (socket directory + the database's ``sandbox_env()``). The
script prints one ``<attack> <exit code>`` line per attempt; every attempt must fail, and the host
side checks that nothing happened (no file written by ``COPY ... TO PROGRAM``, the server's
settings unchanged). A first line proves that the same client, with the same variables, works.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_cleanroom import Cleanroom, Policy
from pytest_cleanroom.services.hub import RunContext, ServiceHub, teardown_run
from pytest_cleanroom.services.postgres import PostgresDatabase
from pytest_cleanroom.services.postgres.isolation import DatabaseFactory
from pytest_cleanroom.services.postgres.template import run_template
from pytest_cleanroom.services.redis import RedisDatabase
from pytest_cleanroom.services.redis.isolation import RedisSlot
from pytest_cleanroom.services.registry import Owner
from pytest_cleanroom.services.settings import ServiceSettings
from tests.integration.services.conftest import data_dir_of
from tests.security.backends import SECURITY_BACKENDS, require_backend

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("need_postgres", "need_redis")]

LOCKED = Policy.level("locked")


@dataclass
class Services:
    hub: ServiceHub
    mine: PostgresDatabase
    other: PostgresDatabase
    redis: RedisDatabase
    other_redis_socket: str


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    """Servers of a run of our own: two tests' databases, this worker's Redis and another's."""
    runtime = Path(tempfile.mkdtemp(prefix="crl-", dir="/tmp"))
    shared = Path(tempfile.mkdtemp(prefix="crl-shared-"))
    settings = ServiceSettings(
        runtime_dir=runtime, data_dir=data_dir_of(runtime), start_timeout=60, base_dir=runtime
    )
    run = RunContext(run_id=uuid.uuid4().hex[:8], owner=Owner.current(), shared_dir=shared)
    hub = ServiceHub(settings, run)
    other_worker = ServiceHub(settings, RunContext(**{**run.__dict__, "worker_id": "gw1"}))
    factory = DatabaseFactory(hub.server("postgres"), run_template(hub), f"{run.db_prefix}lp_")
    slot = RedisSlot(hub.server("redis"), 0, "master", dedicated=True)
    other_socket = other_worker.server("redis").unix_socket
    assert other_socket is not None
    try:
        yield Services(hub, factory.isolate(), factory.isolate(), slot.isolate(), other_socket)
    finally:
        slot.close()
        factory.close()
        teardown_run(run.state_dir)
        shutil.rmtree(runtime, ignore_errors=True)
        shutil.rmtree(data_dir_of(runtime), ignore_errors=True)
        shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture(params=SECURITY_BACKENDS)
def locked(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cleanroom]:
    require_backend(request.param)
    with Cleanroom(tmp_path / "ws", policy=LOCKED, backend=request.param) as room:
        yield room


def attempts(room: Cleanroom, script: str) -> dict[str, int]:
    """Run ``script`` (lines ``name<TAB>command``) in the sandbox; each command's exit code."""
    lines = [line.split("\t", 1) for line in script.strip().splitlines()]
    body = "".join(
        f'{{ {cmd}; }} </dev/null >/dev/null 2>&1; echo "{name} $?"\n' for name, cmd in lines
    )
    result = room.run(["sh", "-c", body])
    result.assert_success()
    codes = dict(line.rsplit(" ", 1) for line in result.stdout.strip().splitlines())
    assert list(codes) == [name for name, _ in lines], result.describe()
    return {name: int(code) for name, code in codes.items()}


def test_a_sandboxed_postgres_client_owns_its_database_and_nothing_else(
    locked: Cleanroom, services: Services, tmp_path: Path
) -> None:
    mine, other = services.mine, services.other
    assert mine.unix_socket_dir is not None
    locked.expose_service("postgres", Path(mine.unix_socket_dir), mine.sandbox_env())
    marker = Path(tempfile.gettempdir()) / f"cleanroom-escape-{uuid.uuid4().hex}"
    q = "psql -v ON_ERROR_STOP=1 -Atc"
    yes = "| grep -qx t"  # the answer is "true": that right is held
    me = "FROM pg_roles WHERE rolname = current_user"
    superuser = mine.server.user
    probes = [
        ("works", f'{q} "CREATE TABLE IF NOT EXISTS mine (x int); INSERT INTO mine VALUES (1)"'),
        ("url works", 'psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -Atc "SELECT 1"'),
        ("copy to program", f"{q} \"COPY (SELECT 1) TO PROGRAM 'touch {marker}'\""),
        ("copy from program", f"{q} \"CREATE TEMP TABLE t (x text); COPY t FROM PROGRAM 'id'\""),
        ("copy to server file", f"{q} \"COPY (SELECT 1) TO '{marker}'\""),
        ("copy from file", f"{q} \"CREATE TEMP TABLE t (x text); COPY t FROM '/etc/hostname'\""),
        ("pg_read_file", f"{q} \"SELECT pg_read_file('/etc/hostname')\""),
        ("pg_ls_dir", f"{q} \"SELECT pg_ls_dir('.')\""),
        ("lo_import", f"{q} \"SELECT lo_import('/etc/hostname')\""),
        ("create role", f"{q} \"CREATE ROLE intruder LOGIN PASSWORD 'x'\""),
        ("create database", f'{q} "CREATE DATABASE intruder"'),
        ("alter system", f"{q} \"ALTER SYSTEM SET work_mem = '1MB'\""),
        ("set role superuser", f'{q} "SET ROLE {superuser}"'),
        ("untrusted extension", f'{q} "CREATE EXTENSION dblink"'),
        ("is superuser", f'{q} "SELECT rolsuper {me}" {yes}'),
        ("creates roles", f'{q} "SELECT rolcreaterole OR rolcreatedb {me}" {yes}'),
        (
            "program role",
            f"{q} \"SELECT pg_has_role('pg_execute_server_program', 'MEMBER')\" {yes}",
        ),
        ("read role", f"{q} \"SELECT pg_has_role('pg_read_server_files', 'MEMBER')\" {yes}"),
        ("write role", f"{q} \"SELECT pg_has_role('pg_write_server_files', 'MEMBER')\" {yes}"),
        ("other test database", f'PGDATABASE={other.dbname} {q} "SELECT 1"'),
        ("other test role", f'PGUSER={other.user} PGDATABASE={other.dbname} {q} "SELECT 1"'),
        ("admin database", f'PGDATABASE=postgres {q} "SELECT 1"'),
        ("template1", f'PGDATABASE=template1 {q} "SELECT 1"'),
        ("superuser, no password", f'PGPASSWORD= PGUSER={superuser} {q} "SELECT 1"'),
        ("superuser, test's password", f'PGUSER={superuser} {q} "SELECT 1"'),
    ]
    script = "\n".join(f"{name}\t{command}" for name, command in probes)
    codes = attempts(locked, script)
    assert codes.pop("works") == 0, codes
    assert codes.pop("url works") == 0, codes
    allowed = {name: code for name, code in codes.items() if code == 0}
    assert not allowed, f"the sandbox was allowed: {sorted(allowed)}"
    assert not marker.exists(), "COPY ... TO PROGRAM/file ran on the host"
    with mine.server.connect() as admin:
        intruders = "SELECT count(*) FROM pg_roles WHERE rolname = 'intruder'"
        assert admin.execute(intruders).fetchone() == (0,)
        assert admin.execute("SHOW work_mem").fetchone() != ("1MB",)
    with mine.connect() as conn:  # what the sandbox made in its own database is there
        assert conn.execute("SELECT DISTINCT x FROM mine").fetchall() == [(1,)]


def test_a_sandboxed_redis_client_cannot_run_server_commands(
    locked: Cleanroom, services: Services
) -> None:
    redis = services.redis
    assert redis.unix_socket is not None
    locked.expose_service("redis", Path(redis.unix_socket).parent, redis.sandbox_env())
    cli = 'redis-cli -s "$REDIS_SOCKET" -n "$REDIS_DB"'
    # redis-cli exits 0 even when the server refuses: a command counts as allowed (exit 0 below)
    # unless the server's reply is a refusal.
    script = "\n".join(
        f"{name}\t! (timeout 5 {cli} {command} 2>&1 | grep -q -e NOPERM -e 'command not allowed')"
        for name, command in [
            ("config set", "config set maxmemory 1mb"),
            ("config get", "config get requirepass"),
            ("shutdown", "shutdown nosave"),
            ("module", "module list"),
            ("debug", "debug sleep 0"),
            ("flushall", "flushall"),
            ("function list", "function list"),
            ("function flush", "function flush"),
            ("script load", "script load 'return 1'"),
            ("eval", "eval 'return 1' 0"),
            ("fcall", "fcall f 0"),
            ("acl setuser", "acl setuser intruder on nopass +@all"),
            ("client kill", "client kill type normal"),
            ("monitor", "monitor"),
            ("migrate", "migrate 127.0.0.1 1 k 0 1000"),
            ("replicaof", "replicaof 127.0.0.1 1"),
            ("swapdb", "swapdb 0 1"),
        ]
    )
    script = f"""
works\t{cli} set k from-sandbox | grep -qx OK
{script}
another worker's server\tredis-cli -s {services.other_redis_socket} ping | grep -qx PONG
"""
    codes = attempts(locked, script)
    assert codes.pop("works") == 0, codes
    allowed = {name: code for name, code in codes.items() if code == 0}
    assert not allowed, f"the sandbox was allowed: {sorted(allowed)}"
    admin = redis.client()
    assert admin.get("k") == b"from-sandbox"
    assert admin.config_get("maxmemory") == {"maxmemory": "0"}
    assert sorted(map(str, admin.acl_users())) == ["cleanroom", "default"]


#: Reads REDIS_URL (unix://:password@/path?db=N) with the standard library alone: AUTH, SELECT,
#: then SET and GET through that URL and nothing else.
REDIS_URL_CLIENT = r"""
import os, socket, sys
from urllib.parse import parse_qs, unquote, urlsplit
url = urlsplit(os.environ["REDIS_URL"])
s = socket.socket(socket.AF_UNIX)
s.connect(url.path)
def call(*args):
    parts = [f"*{len(args)}\r\n"] + [f"${len(a)}\r\n{a}\r\n" for a in args]
    s.sendall("".join(parts).encode())
    reply = s.recv(4096)
    if not reply.startswith((b"+", b"$")):
        sys.exit(f"{args[0]}: {reply!r}")
    return reply
call("AUTH", unquote(url.password))
call("SELECT", parse_qs(url.query)["db"][0])
call("SET", "via-url", "1")
print(call("GET", "via-url").split()[1].decode())
"""


@pytest.mark.parametrize("level", ["permissive", "standard", "strict", "locked"])
def test_every_variable_works_at_every_level(
    level: str, services: Services, tmp_path: Path
) -> None:
    """PG*, DATABASE_URL, REDIS_SOCKET/REDIS_DB/REDISCLI_AUTH and REDIS_URL each reach the
    test's own database, on every backend, whether the level isolates the network or not."""
    for backend in SECURITY_BACKENDS:
        require_backend(backend)
    mine, redis = services.mine, services.redis
    assert mine.unix_socket_dir is not None
    assert redis.unix_socket is not None
    no_pg = "env -u PGHOST -u PGPORT -u PGUSER -u PGPASSWORD -u PGDATABASE"
    probes = [
        ("PG variables", f'psql -Atc "SELECT current_database()" | grep -qx {mine.dbname}'),
        ("DATABASE_URL", f'{no_pg} psql "$DATABASE_URL" -Atc "SELECT 1" | grep -qx 1'),
        ("redis-cli variables", 'redis-cli -s "$REDIS_SOCKET" -n "$REDIS_DB" ping | grep -qx PONG'),
        ("REDIS_URL", "python3 url_client.py | grep -qx 1"),
    ]
    script = "\n".join(f"{name}\t{command}" for name, command in probes)
    for backend in SECURITY_BACKENDS:
        with Cleanroom(tmp_path / backend, policy=level, backend=backend) as room:
            room.expose_service("postgres", Path(mine.unix_socket_dir), mine.sandbox_env())
            room.expose_service("redis", Path(redis.unix_socket).parent, redis.sandbox_env())
            (room.workspace.root / "url_client.py").write_text(REDIS_URL_CLIENT)
            codes = attempts(room, script)
            assert codes == dict.fromkeys(codes, 0), f"{backend} under {level}: {codes}"
