"""``DATABASE_URL`` in a sandboxed command names the one database service that command reaches:
with ``postgres`` and ``mysql`` both exposed it is not set (which one it named would depend on
fixture order), their own ``POSTGRES_URL`` and ``MYSQL_URL`` always are, and a warning says so."""

from __future__ import annotations

import shutil

import pytest

from pytest_cleanroom.services.binaries import find_mysql
from tests.conftest import require, require_binary

pytest_plugins = ("pytester",)
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("binaries", "runtime_dir")]

TESTS = """
import pytest


def env_of(cleanroom, **kwargs):
    result = cleanroom.run(["env"], **kwargs)
    result.assert_success()
    return dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)


def test_one_database_gives_database_url(cleanroom, postgres):
    env = env_of(cleanroom)
    assert env["DATABASE_URL"] == env["POSTGRES_URL"] == postgres.url_for("libpq", via_socket=True)


def test_two_databases_give_none_but_their_own(cleanroom, postgres, mysql):
    env = env_of(cleanroom)
    assert "DATABASE_URL" not in env
    assert env["POSTGRES_URL"] == postgres.url_for("libpq", via_socket=True)
    assert env["MYSQL_URL"] == mysql.url_for("mysql", via_socket=True)
    # A command whose policy allows one of them gets that one's.
    only_mysql = cleanroom.policy.replace(allowed_services=("mysql",))
    env = env_of(cleanroom, policy=only_mysql)
    assert env["DATABASE_URL"] == env["MYSQL_URL"]
    assert "POSTGRES_URL" not in env


def test_a_database_and_redis_keep_database_url(cleanroom, mysql, redis):
    env = env_of(cleanroom)
    assert env["DATABASE_URL"] == env["MYSQL_URL"]
    assert env["REDIS_URL"].startswith("unix://")
"""


def test_database_url_is_set_only_for_one_database_service(pytester: pytest.Pytester) -> None:
    require_binary("bwrap", "apt-get install bubblewrap")
    require(find_mysql() is not None, "MariaDB's server (apt-get install mariadb-server)")
    require(shutil.which("env") is not None, "env (coreutils)")
    pytester.makepyfile(test_urls=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*DatabaseUrlWarning: mysql and postgres both give a DATABASE_URL: a command that "
            "may reach both gets none; use MYSQL_URL, POSTGRES_URL*"
        ]
    )
