"""Helpers for driving the services fixtures through pytester."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_cleanroom.services.binaries import find_postgres, find_redis
from tests.conftest import require
from tests.integration.services.conftest import (  # noqa: F401 (engine, need_docker: fixtures)
    data_dir_of,
    engine,
    kill_all,
    leftovers,
    need_docker,
    processes_under,
)


@pytest.fixture
def runtime_dir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The nested runs' services runtime directory (short: unix socket paths are limited).

    Nothing may still run in it when the test ends, and no server directory may remain.
    """
    path = Path(tempfile.mkdtemp(prefix="crp-", dir="/tmp"))
    monkeypatch.setenv("CLEANROOM_SERVICES_RUNTIME_DIR", str(path))
    monkeypatch.setenv("CLEANROOM_SERVICES_DATA_DIR", str(data_dir_of(path)))
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    for name in (
        "CLEANROOM_SERVICES",
        "CLEANROOM_POSTGRES_URL",
        "CLEANROOM_REDIS_URL",
        "CLEANROOM_MYSQL_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    yield path
    leaked = processes_under(path)
    kill_all(leaked)
    left = leftovers(path)
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(data_dir_of(path), ignore_errors=True)
    assert not leaked, f"processes leaked in {path}: {leaked}"
    assert not left, f"server directories left in {path}: {left}"


@pytest.fixture
def binaries() -> None:
    require(find_postgres() is not None, "PostgreSQL server binaries (apt-get install postgresql)")
    require(find_redis() is not None, "redis-server (apt-get install redis-server)")


#: A Django project that test_django.py copies and runs in a pytest of its own.
collect_ignore = ["django_project"]
