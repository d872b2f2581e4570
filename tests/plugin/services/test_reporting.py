"""What a user reads: the header's provider and reason, log tails, one clear error per mistake."""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

import pytest

from pytest_cleanroom.services.binaries import python_package_bin_dirs
from tests.conftest import require_binary

pytest_plugins = ("pytester",)

# Where the process provider looks for servers; hiding them leaves a machine without binaries.
HIDDEN_DIRS = ("/usr/lib/postgresql", "/usr/local/bin", "/usr/pgsql", "/opt/homebrew")
HIDDEN_FILES = ("/usr/bin/redis-server", "/usr/sbin/redis-server")


def without_binaries(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest in a mount namespace where the PostgreSQL and Redis servers do not exist."""
    bwrap = require_binary("bwrap", "apt-get install bubblewrap")
    cmd = [bwrap, "--dev-bind", "/", "/"]
    for directory in HIDDEN_DIRS:
        for path in glob.glob(directory + "*"):
            cmd += ["--tmpfs", path]
    for path in HIDDEN_FILES:
        if os.path.exists(path):
            cmd += ["--ro-bind", "/dev/null", path]
    for bin_dir in python_package_bin_dirs():  # e.g. the pgserver wheel's PostgreSQL 16
        if bin_dir.is_dir():
            cmd += ["--tmpfs", str(bin_dir)]
    cmd += [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return pytester.run(*cmd, timeout=120)


@pytest.mark.usefixtures("binaries", "runtime_dir")
def test_header_names_the_provider_and_why(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest()
    result.stdout.re_match_lines(
        [
            r"cleanroom services: postgres=process \(auto: postgres \d+\.\d+ in /\S+\); "
            r"redis=process \(auto: redis-server [\d.]+ at /\S+redis-server\)"
        ]
    )


@pytest.mark.usefixtures("binaries", "runtime_dir")
def test_a_failing_test_carries_the_server_log_tail(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_bad_query(postgres, redis):
            with postgres.connect() as conn:
                conn.execute("SELECT * FROM no_such_table_xyz")

        def test_good(postgres):
            with postgres.connect() as conn:
                conn.execute("SELECT 1")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- cleanroom postgres server log (since the test began) -*",
            '*ERROR:  relation "no_such_table_xyz" does not exist*',
        ]
    )
    # Only the failing test gets the section, with only what was logged during the test:
    # Redis logged nothing then, so nothing of its start-up log is attached.
    assert result.stdout.str().count("cleanroom postgres server log") == 1
    assert "cleanroom redis server log" not in result.stdout.str()
    assert "database system is ready" not in result.stdout.str()


@pytest.mark.usefixtures("runtime_dir")
def test_external_without_a_url_says_which_variable_to_set(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_db(postgres):\n    pass\n\ndef test_plain():\n    pass\n")
    result = pytester.runpytest("--cleanroom-services=external")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "cleanroom services: postgres=unavailable (--cleanroom-services=external but no "
            "postgres URL is configured: set CLEANROOM_POSTGRES_URL or --cleanroom-postgres-url)*",
            "*ServiceUnavailableError: --cleanroom-services=external but no postgres URL*",
        ]
    )


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"ini": "cleanroom_services = sometimes"}, "ini cleanroom_services='sometimes' is not*"),
        (
            {"env": ("CLEANROOM_SERVICES", "kubernetes")},
            "CLEANROOM_SERVICES='kubernetes' is not a services*",
        ),
        (
            {"env": ("CLEANROOM_POSTGRES_URL", "mysql://u:p@h/db")},
            "CLEANROOM_POSTGRES_URL must be a postgresql:// URL*",
        ),
        ({"env": ("CLEANROOM_REDIS_URL", "http://h")}, "CLEANROOM_REDIS_URL must be a redis://*"),
        (
            {"env": ("CLEANROOM_SERVICES_START_TIMEOUT", "-3")},
            "CLEANROOM_SERVICES_START_TIMEOUT='-3' must be a positive number of seconds",
        ),
        (
            {"ini": "cleanroom_postgres_port = 99999"},
            "ini cleanroom_postgres_port=99999 is outside*",
        ),
    ],
)
@pytest.mark.usefixtures("runtime_dir")
def test_bad_settings_are_usage_errors(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    setting: dict[str, object],
    message: str,
) -> None:
    if "ini" in setting:
        pytester.makeini(f"[pytest]\n{setting['ini']}\n")
    if "env" in setting:
        name, value = setting["env"]  # type: ignore[misc]
        monkeypatch.setenv(name, value)
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])


def test_auto_with_nothing_usable_lists_every_fix(
    pytester: pytest.Pytester, runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No URL, no binaries (hidden by a mount namespace), Docker's and Podman's sockets absent.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{runtime_dir}/no-docker.sock")
    monkeypatch.setenv("CLEANROOM_PODMAN_HOST", f"unix://{runtime_dir}/no-podman.sock")
    pytester.makepyfile(
        "def test_db(postgres):\n    pass\n\n"
        "def test_cache(redis):\n    pass\n\n"
        "def test_plain():\n    pass\n"
    )
    result = without_binaries(pytester)
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "cleanroom services: postgres=unavailable (no postgres provider can serve*",
            "*ServiceUnavailableError: no postgres provider can serve (no URL configured, no "
            "postgres server binaries, no Docker socket at */no-docker.sock, * socket at "
            "*/no-podman.sock*); fix one of: "
            "(1) point at a running server: set CLEANROOM_POSTGRES_URL (or "
            "--cleanroom-postgres-url); (2) install PostgreSQL's server*; "
            "(3) start a Docker engine (dockerd)*; (4) start Podman's API service*",
            "*ServiceUnavailableError: no redis provider can serve*(1)*CLEANROOM_REDIS_URL*"
            "(2) install Redis*(3) start a Docker engine*(4) start Podman's API service*",
        ]
    )


def test_process_provider_without_binaries_names_what_to_install(
    pytester: pytest.Pytester, runtime_dir: Path
) -> None:
    pytester.makepyfile("def test_db(postgres):\n    pass\n")
    result = without_binaries(pytester, "--cleanroom-services=process")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "*--cleanroom-services=process but no postgres server binaries: install "
            "PostgreSQL's server (Debian/Ubuntu: apt-get install postgresql; macOS: brew install*"
        ]
    )


@pytest.mark.parametrize(("module", "fixture"), [("psycopg", "postgres"), ("redis", "redis")])
def test_a_missing_client_library_names_the_extra(
    pytester: pytest.Pytester, runtime_dir: Path, module: str, fixture: str
) -> None:
    # An uninstalled package, as Python sees it: importing it raises ModuleNotFoundError.
    pytester.makeconftest(f"import sys\nsys.modules[{module!r}] = None\n")
    pytester.makepyfile(f"def test_it({fixture}):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:postgresql", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    expected = f"the {module} package is missing: pip install 'pytest-cleanroom[services]'"
    assert expected in result.stdout.lines
    assert "During handling" not in result.stdout.str()
    assert list(runtime_dir.glob("??-*")) == []  # no server was started for nothing
