"""Each major driver connects with the connection string made for it, sync and async."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.conftest import require

#: Where scripts/setup.sh installs pytest-asyncio, apart from the environment (see there).
PYTEST_ASYNCIO = Path(__file__).resolve().parents[3] / ".venv" / "opt" / "pytest-asyncio"

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("binaries", "runtime_dir")]

DRIVERS = """
import asyncio

import asyncpg
import psycopg
import pytest
import redis as redis_py
import sqlalchemy
from sqlalchemy.ext.asyncio import create_async_engine


def test_psycopg_sync(postgres):
    for target in (postgres.dsn, postgres.uri, postgres.url_for("libpq", via_socket=True)):
        with psycopg.connect(target) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == (postgres.dbname,)


def test_sqlalchemy_sync(postgres):
    for url in (postgres.url, postgres.url_for("psycopg", via_socket=True)):
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT current_user")).scalar() == postgres.user
        engine.dispose()


def test_redis_sync(redis):
    redis.client().set("k", "v")
    assert redis_py.Redis.from_url(redis.url).get("k") == b"v"
    assert redis_py.Redis.from_url(redis.sandbox_env()["REDIS_URL"]).get("k") == b"v"


async def _asyncpg(postgres):
    for dsn in (postgres.uri, postgres.url_for("libpq", via_socket=True)):
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT current_database()") == postgres.dbname
        finally:
            await conn.close()


async def _psycopg_async(postgres):
    async with await postgres.aconnect() as conn:
        cursor = await conn.execute("SELECT current_user")
        assert await cursor.fetchone() == (postgres.user,)


async def _sqlalchemy_async(postgres):
    for url in (
        postgres.async_url,
        postgres.url_for("asyncpg", via_socket=True),
        postgres.url_for("psycopg_async"),
    ):
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            result = await conn.execute(sqlalchemy.text("SELECT current_database()"))
            assert result.scalar() == postgres.dbname
        await engine.dispose()


async def _redis_async(redis):
    client = redis.aclient()
    try:
        await client.set("k", "async")
        assert await client.get("k") == b"async"
    finally:
        await client.aclose()


ASYNC = [_asyncpg, _psycopg_async, _sqlalchemy_async]


@pytest.mark.asyncio
@pytest.mark.parametrize("check", ASYNC)
async def test_pytest_asyncio(postgres, check):
    await check(postgres)


@pytest.mark.anyio
@pytest.mark.parametrize("check", ASYNC)
async def test_anyio(postgres, check):
    await check(postgres)


@pytest.mark.asyncio
async def test_redis_asyncio_with_pytest_asyncio(redis):
    await _redis_async(redis)


@pytest.mark.anyio
async def test_redis_asyncio_with_anyio(redis):
    await _redis_async(redis)
"""


def test_every_driver_connects_sync_and_async(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("asyncpg", "sqlalchemy", "anyio"):
        require(
            importlib.util.find_spec(module) is not None,
            f"{module} (pip install 'pytest-cleanroom[drivers]'; scripts/setup.sh installs it)",
        )
    require((PYTEST_ASYNCIO / "pytest_asyncio").is_dir(), f"pytest-asyncio in {PYTEST_ASYNCIO}")
    path = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(PYTEST_ASYNCIO), path])))
    pytester.makepyfile(test_drivers=DRIVERS)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=11)
