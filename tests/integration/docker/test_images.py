"""The locally built images honour the official images' contract, driven through testcontainers.

testcontainers' own wait strategies are the judge: PostgresContainer runs ``psql --host 127.0.0.1``
inside the container until it answers, RedisContainer pings through the published port.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import POSTGRES_IMAGE, REDIS_IMAGE

pytestmark = [pytest.mark.integration, pytest.mark.docker, pytest.mark.usefixtures("local_images")]


def _loopback_only(container: Any, port: int) -> None:
    """Publish ``port`` on 127.0.0.1 only (a random host port), never on every interface."""
    container.ports[str(port)] = ("127.0.0.1", None)


def _gone(docker_client: Any, container_id: str) -> bool:
    return not docker_client.containers.list(all=True, filters={"id": container_id}, sparse=True)


def _wait_exit(container: Any, limit: float = 60.0) -> int:
    result = container.wait(timeout=limit)
    return int(result["StatusCode"])


def test_postgres_image_serves_testcontainers(docker_client: Any, no_ryuk: None) -> None:
    import psycopg
    from testcontainers.community.postgres import PostgresContainer

    pg = PostgresContainer(
        POSTGRES_IMAGE, username="cr_user", password="pa'ss word", dbname="cr_db", driver=None
    )
    _loopback_only(pg, 5432)
    with pg:
        container_id = pg.get_container_id()
        binding = docker_client.api.port(container_id, 5432)
        assert [b["HostIp"] for b in binding] == ["127.0.0.1"]
        port = int(binding[0]["HostPort"])
        dsn = f"host=127.0.0.1 port={port} user=cr_user password='pa\\'ss word' dbname=cr_db"
        with psycopg.connect(dsn) as conn:
            user, db, version = conn.execute(
                "select current_user, current_database(), current_setting('server_version_num')"
            ).fetchone()
        assert (user, db) == ("cr_user", "cr_db")
        assert version.startswith("15")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(f"host=127.0.0.1 port={port} user=cr_user password=wrong dbname=cr_db")
        stdout, stderr = pg.get_logs()
        logs = (stdout + stderr).decode()
        # Readiness lines other clients (testcontainers-java, scripts) wait for.
        assert "PostgreSQL init process complete; ready for start up." in logs
        assert logs.count("database system is ready to accept connections") == 2
        assert 'listening on IPv4 address "0.0.0.0", port 5432' in logs
    assert _gone(docker_client, container_id)


def test_postgres_image_runs_initdb_args_and_init_scripts(
    docker_client: Any, no_ryuk: None, tmp_path: Path
) -> None:
    import psycopg
    from testcontainers.community.postgres import PostgresContainer

    init = tmp_path / "initdb.d"
    init.mkdir()
    (init / "01-schema.sql").write_text("create table seeded (id int primary key);\n")
    (init / "02-data.sh").write_text(
        'psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" '
        '-c "insert into seeded values (42)"\n'
    )
    init.chmod(0o755)
    for f in init.iterdir():
        f.chmod(0o644)

    pg = (
        PostgresContainer(
            POSTGRES_IMAGE, username="app", password="pw", dbname="appdb", driver=None
        )
        .with_env("POSTGRES_INITDB_ARGS", "--data-checksums --encoding=UTF8 --no-sync")
        .with_volume_mapping(init, "/docker-entrypoint-initdb.d", "ro")
    )
    _loopback_only(pg, 5432)
    with pg:
        port = pg.get_exposed_port(5432)
        with psycopg.connect(
            host="127.0.0.1", port=port, user="app", password="pw", dbname="appdb"
        ) as conn:
            assert conn.execute("show data_checksums").fetchone() == ("on",)
            assert conn.execute("select id from seeded").fetchall() == [(42,)]


def test_postgres_image_refuses_to_start_without_password(docker_client: Any) -> None:
    container = docker_client.containers.run(POSTGRES_IMAGE, detach=True, labels={"test": "cr"})
    try:
        assert _wait_exit(container) == 1
        logs = container.logs().decode()
        assert "superuser password is not specified" in logs
    finally:
        container.remove(force=True)


def test_postgres_image_keeps_an_existing_data_directory(docker_client: Any) -> None:
    """A second start on the same PGDATA skips initdb, as the official image does."""
    volume = docker_client.volumes.create(labels={"io.cleanroom.test": "pgdata"})
    try:
        env = {"POSTGRES_PASSWORD": "pw", "POSTGRES_INITDB_ARGS": "--no-sync"}
        mounts = {volume.name: {"bind": "/var/lib/postgresql/data", "mode": "rw"}}
        for expected in ("PostgreSQL init process complete", "appears to contain a database"):
            c = docker_client.containers.run(
                POSTGRES_IMAGE,
                ["postgres", "-c", "fsync=off"],
                environment=env,
                volumes=mounts,
                detach=True,
            )
            try:
                _wait_for_log(c, "database system is ready to accept connections\n", expected)
            finally:
                c.remove(force=True)
    finally:
        volume.remove(force=True)


def _wait_for_log(container: Any, *needles: str, limit: float = 60.0) -> str:
    deadline = time.monotonic() + limit
    logs = ""
    while time.monotonic() < deadline:
        logs = container.logs().decode()
        if all(n in logs for n in needles):
            return logs
        container.reload()
        if container.status == "exited":
            break
        time.sleep(0.2)
    raise AssertionError(f"container never logged {needles!r}; logs:\n{logs}")


def test_redis_image_serves_testcontainers(docker_client: Any, no_ryuk: None) -> None:
    import redis
    from testcontainers.community.redis import RedisContainer

    rc = RedisContainer(REDIS_IMAGE)
    _loopback_only(rc, 6379)
    with rc:
        container_id = rc.get_container_id()
        port = rc.get_exposed_port(6379)
        client = redis.Redis(host="127.0.0.1", port=port)
        assert client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.config_get("protected-mode") == {"protected-mode": "no"}
        assert client.info("server")["redis_version"].startswith("7.")
        assert client.info("server")["tcp_port"] == 6379
        stdout, stderr = rc.get_logs()
        assert b"Ready to accept connections" in stdout + stderr
        top = docker_client.api.top(container_id, ps_args="-o pid,uid,args")
        column = top["Titles"].index("UID")
        assert all(row[column] != "0" for row in top["Processes"]), top  # not root
    assert _gone(docker_client, container_id)


def test_redis_image_honours_a_password(docker_client: Any, no_ryuk: None) -> None:
    import redis
    from testcontainers.community.redis import RedisContainer

    rc = RedisContainer(REDIS_IMAGE, password="hunter2")
    _loopback_only(rc, 6379)
    with rc:
        port = rc.get_exposed_port(6379)
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(host="127.0.0.1", port=port).ping()
        assert redis.Redis(host="127.0.0.1", port=port, password="hunter2").ping()
